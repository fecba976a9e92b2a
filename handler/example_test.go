package handler_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/slogaudit/slogaudit/chain"
	"github.com/slogaudit/slogaudit/handler"
)

func Example() {
	dir, _ := os.MkdirTemp("", "audit")
	defer os.RemoveAll(dir)

	key := chain.GenerateKey() // in production: chain.ReadKeyFile (auditctl keygen -o FILE)
	h, err := handler.New(handler.Options{Dir: dir, Key: key, App: slog.DiscardHandler})
	if err != nil {
		panic(err)
	}
	log := slog.New(h)

	log.Info("cache warmed")                                // app log only
	log.Info("config reloaded", handler.Audit)              // audit file
	handler.Logger(log).Warn("login failed", "user", "ada") // audit file
	h.Close()

	rep, err := chain.Verify(dir, chain.VerifyOptions{Key: key})
	if err != nil {
		panic(err)
	}
	fmt.Println("audit records:", rep.Lines-2, "intact:", rep.Intact) // minus open and close records
	// Output: audit records: 2 intact: true
}

func ExampleLog() {
	dir, _ := os.MkdirTemp("", "audit")
	defer os.RemoveAll(dir)
	h, _ := handler.New(handler.Options{Dir: dir, App: slog.DiscardHandler})
	defer h.Close()
	log := slog.New(h)

	err := handler.Log(context.Background(), log, handler.Event{
		Type: handler.CredentialAccess, Action: "get", ResourceType: "credential",
		Resource: "obsidian_api_key", Status: handler.StatusSuccess,
	})
	if err != nil {
		fmt.Println("not audited, refusing:", err) // fail closed
		return
	}
	fmt.Println("audited")
	// Output: audited
}

func ExampleBegin() {
	dir, _ := os.MkdirTemp("", "audit")
	defer os.RemoveAll(dir)
	h, _ := handler.New(handler.Options{Dir: dir, App: slog.DiscardHandler})
	log := slog.New(h)

	start := func(ctx context.Context, name string) (err error) {
		defer handler.Begin(ctx, log, handler.Event{Type: handler.AdminAction, Action: "start", ResourceType: "mcp_server", Resource: name}).End(&err)
		if name == "broken" {
			return errors.New("exited during startup")
		}
		return nil
	}
	fmt.Println(start(context.Background(), "obsidian"))
	fmt.Println(start(context.Background(), "broken"))
	h.Close()

	rep, _ := chain.Verify(dir, chain.VerifyOptions{})
	fmt.Println("lines:", rep.Lines, "intact:", rep.Intact) // open, 4 events, close
	// Output:
	// <nil>
	// exited during startup
	// lines: 6 intact: true
}
