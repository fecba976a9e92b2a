package chain_test

import (
	"bytes"
	"fmt"
	"os"

	"github.com/slogaudit/slogaudit/chain"
	"github.com/slogaudit/slogaudit/rotate"
)

func ExampleVerify() {
	dir, _ := os.MkdirTemp("", "audit")
	defer os.RemoveAll(dir)
	key := chain.GenerateKey()

	w, err := chain.Open(chain.Options{Key: key, Rotate: rotate.Options{Dir: dir}})
	if err != nil {
		panic(err)
	}
	var pos chain.Position
	w.Append([]byte(`"msg":"server started","server":"obsidian"`), &pos)
	w.Close()
	fmt.Println("record seq:", pos.Seq) // seq 1 is the file's open record

	rep, err := chain.Verify(dir, chain.VerifyOptions{Key: key})
	if err != nil {
		panic(err)
	}
	fmt.Println("lines:", rep.Lines, "intact:", rep.Intact)

	// Edit the record: verification names the line.
	data, _ := os.ReadFile(w.Path())
	os.WriteFile(w.Path(), bytes.Replace(data, []byte(`"obsidian"`), []byte(`"0bsidian"`), 1), 0o600)
	rep, _ = chain.Verify(dir, chain.VerifyOptions{Key: key})
	p := rep.Problems()[0]
	fmt.Println("intact:", rep.Intact, p.Class, "line", p.Line)
	// Output:
	// record seq: 2
	// lines: 3 intact: true
	// intact: false MODIFIED line 2
}
