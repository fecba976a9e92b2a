package main

// This test lives in the collector's nested module because it needs a YAML
// parser, which the root module does not depend on.

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

const repoRoot = "../../.."

type compose struct {
	Services map[string]struct {
		Build *struct {
			Context    string `yaml:"context"`
			Dockerfile string `yaml:"dockerfile"`
		} `yaml:"build"`
		Image       string            `yaml:"image"`
		Command     []string          `yaml:"command"`
		Environment map[string]string `yaml:"environment"`
		Ports       []string          `yaml:"ports"`
		Volumes     []string          `yaml:"volumes"`
		DependsOn   dependsOn         `yaml:"depends_on"`
	} `yaml:"services"`
	Volumes map[string]any `yaml:"volumes"`
}

// dependsOn is a service's depends_on in either form: a list of services
// (each "service_started") or a map of service to {condition: ...}.
type dependsOn map[string]string

func (d *dependsOn) UnmarshalYAML(n *yaml.Node) error {
	*d = dependsOn{}
	var list []string
	if err := n.Decode(&list); err == nil {
		for _, s := range list {
			(*d)[s] = "service_started"
		}
		return nil
	}
	var m map[string]struct {
		Condition string `yaml:"condition"`
	}
	if err := n.Decode(&m); err != nil {
		return err
	}
	for s, c := range m {
		if c.Condition == "" {
			c.Condition = "service_started"
		}
		(*d)[s] = c.Condition
	}
	return nil
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot, path))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// containerPorts returns the container side of a service's published ports.
func containerPorts(ports []string) map[string]bool {
	m := map[string]bool{}
	for _, p := range ports {
		m[p[strings.LastIndex(p, ":")+1:]] = true
	}
	return m
}

// TestComposeFile checks docker-compose.otel.yaml without a Docker engine:
// every mounted file exists, every build input exists, and the services'
// ports and endpoints agree with each other and with the mounted configs.
func TestComposeFile(t *testing.T) {
	var c compose
	readYAML(t, "docker-compose.otel.yaml", &c)
	for _, name := range []string{"example", "otel-collector", "loki", "jaeger", "grafana"} {
		if _, ok := c.Services[name]; !ok {
			t.Fatalf("service %s missing", name)
		}
	}
	mounts := map[string]string{} // container path -> host path
	for name, s := range c.Services {
		for d := range s.DependsOn {
			if _, ok := c.Services[d]; !ok {
				t.Errorf("%s depends on unknown service %s", name, d)
			}
		}
		for _, v := range s.Volumes {
			parts := strings.Split(v, ":")
			host, target := parts[0], parts[1]
			if strings.HasPrefix(host, "./") {
				if _, err := os.Stat(filepath.Join(repoRoot, host)); err != nil {
					t.Errorf("%s mounts %s, which does not exist", name, host)
				}
				mounts[target] = host
			} else if _, ok := c.Volumes[host]; !ok {
				t.Errorf("%s uses undeclared volume %s", name, host)
			}
		}
		if s.Build != nil {
			if _, err := os.Stat(filepath.Join(repoRoot, s.Build.Context, s.Build.Dockerfile)); err != nil {
				t.Errorf("%s: Dockerfile %s: %v", name, s.Build.Dockerfile, err)
			}
		}
		if s.Build == nil && s.Image == "" {
			t.Errorf("%s has neither build nor image", name)
		}
	}

	// The endpoints each service is given point at a service that publishes
	// that port.
	endpoint := func(who, raw string, wantSvc, wantPort string) {
		u, err := url.Parse(raw)
		if err != nil || u.Hostname() != wantSvc || u.Port() != wantPort {
			t.Errorf("%s: endpoint %q, want service %s port %s", who, raw, wantSvc, wantPort)
		}
	}
	ex, col := c.Services["example"], c.Services["otel-collector"]
	endpoint("example OTEL_EXPORTER_OTLP_ENDPOINT", ex.Environment["OTEL_EXPORTER_OTLP_ENDPOINT"], "otel-collector", "4318")
	endpoint("collector LOGS_OTLP_ENDPOINT", col.Environment["LOGS_OTLP_ENDPOINT"], "loki", "3100")
	endpoint("collector TRACES_OTLP_ENDPOINT", col.Environment["TRACES_OTLP_ENDPOINT"], "jaeger", "4318")
	if !strings.Contains(strings.Join(ex.Command, " "), "-addr 0.0.0.0:8080") || !containerPorts(ex.Ports)["8080"] {
		t.Errorf("example must listen on 0.0.0.0:8080 and publish it: %v %v", ex.Command, ex.Ports)
	}

	// The collector's config: the mounted file, its receivers on the ports
	// the service publishes, and its --config pointing at the mount.
	var colCfg struct {
		Receivers struct {
			OTLP struct {
				Protocols map[string]struct {
					Endpoint string `yaml:"endpoint"`
				} `yaml:"protocols"`
			} `yaml:"otlp"`
		} `yaml:"receivers"`
	}
	var cfgPath string
	var storageCfg struct {
		Extensions struct {
			FileStorage struct {
				Directory string `yaml:"directory"`
			} `yaml:"file_storage"`
		} `yaml:"extensions"`
		Exporters struct {
			Logs struct {
				SendingQueue struct {
					Storage string `yaml:"storage"`
				} `yaml:"sending_queue"`
			} `yaml:"otlp_http/logs"`
		} `yaml:"exporters"`
		Service struct {
			Extensions []string `yaml:"extensions"`
			Pipelines  map[string]struct {
				Processors []string `yaml:"processors"`
				Exporters  []string `yaml:"exporters"`
			} `yaml:"pipelines"`
		} `yaml:"service"`
	}
	for _, a := range col.Command {
		if p, ok := strings.CutPrefix(a, "--config="); ok {
			cfgPath = p
		}
	}
	host, ok := mounts[cfgPath]
	if !ok {
		t.Fatalf("collector --config=%s is not a mounted file", cfgPath)
	}
	readYAML(t, host, &colCfg)
	readYAML(t, host, &storageCfg)
	checkStorage(t, c, storageCfg.Extensions.FileStorage.Directory, storageCfg.Exporters.Logs.SendingQueue.Storage,
		storageCfg.Service.Extensions, storageCfg.Service.Pipelines["logs"].Processors, storageCfg.Service.Pipelines["logs"].Exporters)
	for proto, port := range map[string]string{"grpc": "4317", "http": "4318"} {
		ep := colCfg.Receivers.OTLP.Protocols[proto].Endpoint
		if !strings.HasSuffix(strings.TrimSuffix(ep, "}"), ":"+port) || !containerPorts(col.Ports)[port] {
			t.Errorf("collector %s receiver %q / ports %v disagree on %s", proto, ep, col.Ports, port)
		}
	}

	// Loki listens where the collector and Grafana send.
	var loki struct {
		Server struct {
			Port int `yaml:"http_listen_port"`
		} `yaml:"server"`
	}
	lk := c.Services["loki"]
	for _, a := range lk.Command {
		if p, ok := strings.CutPrefix(a, "-config.file="); ok {
			readYAML(t, mounts[p], &loki)
		}
	}
	if fmt.Sprint(loki.Server.Port) != "3100" || !containerPorts(lk.Ports)["3100"] {
		t.Errorf("loki listens on %d, publishes %v", loki.Server.Port, lk.Ports)
	}

	// Grafana: datasources point at the services; derived fields and trace
	// links point at datasources that exist; the dashboards directory is
	// where the provider looks, and the dashboard uses known datasources.
	var ds struct {
		Datasources []struct {
			Name, Type, UID, URL string
			JSONData             map[string]any `yaml:"jsonData"`
		} `yaml:"datasources"`
	}
	readYAML(t, "deploy/otel/grafana/provisioning/datasources/datasources.yaml", &ds)
	uids := map[string]string{}
	for _, d := range ds.Datasources {
		uids[d.UID] = d.URL
	}
	if uids["loki"] != "http://loki:3100" || uids["jaeger"] != "http://jaeger:16686" || !containerPorts(c.Services["jaeger"].Ports)["16686"] {
		t.Errorf("datasources %v", uids)
	}
	raw, _ := json.Marshal(ds)
	for _, want := range []string{`"datasourceUid":"jaeger"`, `"matcherRegex":"trace_id"`, `"tracesToLogsV2":{"customQuery":true,"datasourceUid":"loki"`} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("datasources lack %s: %s", want, raw)
		}
	}
	var prov struct {
		Providers []struct {
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	readYAML(t, "deploy/otel/grafana/provisioning/dashboards/dashboards.yaml", &prov)
	dashDir, ok := mounts[prov.Providers[0].Options.Path]
	if !ok {
		t.Fatalf("dashboard provider path %s is not mounted", prov.Providers[0].Options.Path)
	}
	data, err := os.ReadFile(filepath.Join(repoRoot, dashDir, "audit.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title      string
			Datasource struct{ UID string }
			Targets    []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatal(err)
	}
	titles := ""
	for _, p := range dash.Panels {
		titles += p.Title + "|"
		if _, ok := uids[p.Datasource.UID]; !ok || len(p.Targets) == 0 || p.Targets[0].Expr == "" {
			t.Errorf("panel %q: datasource %q, targets %v", p.Title, p.Datasource.UID, p.Targets)
		}
	}
	for _, want := range []string{"by action and status", "Failed and denied", "Credential access by key"} {
		if !strings.Contains(titles, want) {
			t.Errorf("dashboard lacks a panel %q: %s", want, titles)
		}
	}
}

// checkStorage checks the collector's persistent queue in the compose
// stack: the logs exporter queues in file_storage, the logs pipeline has no
// batch processor (it would acknowledge before the queue stores anything),
// and file_storage's directory (OTELCOL_STORAGE_DIR in the collector's
// environment, else the config's default) is a writable named volume that
// the init service hands to the collector's user before the collector starts.
func checkStorage(t *testing.T, c compose, dirExpr, queueStorage string, extensions, logsProcessors, logsExporters []string) {
	t.Helper()
	const prefix = "${env:OTELCOL_STORAGE_DIR:-"
	def, ok := strings.CutPrefix(dirExpr, prefix)
	if !ok || !strings.HasSuffix(def, "}") {
		t.Fatalf("file_storage directory %q, want %s<default>}", dirExpr, prefix)
	}
	def = strings.TrimSuffix(def, "}")
	if queueStorage != "file_storage" || !slices.Contains(extensions, "file_storage") || !slices.Contains(logsExporters, "otlp_http/logs") {
		t.Errorf("logs exporter queue storage %q, service extensions %v, logs exporters %v", queueStorage, extensions, logsExporters)
	}
	if slices.Contains(logsProcessors, "batch") {
		t.Errorf("logs pipeline processors %v: the batch processor acknowledges before the queue has the data", logsProcessors)
	}
	col := c.Services["otel-collector"]
	dir := def
	if v, ok := col.Environment["OTELCOL_STORAGE_DIR"]; ok {
		dir = v
	}
	volumeAt := func(s string, target string) string {
		for _, v := range c.Services[s].Volumes {
			parts := strings.Split(v, ":")
			if len(parts) >= 2 && parts[1] == target && !strings.HasPrefix(parts[0], ".") && !strings.HasPrefix(parts[0], "/") {
				if len(parts) > 2 && parts[2] == "ro" {
					t.Errorf("%s mounts %s read-only", s, v)
				}
				return parts[0]
			}
		}
		return ""
	}
	vol := volumeAt("otel-collector", dir)
	if vol == "" {
		t.Fatalf("the collector's storage directory %s is not a named volume: %v", dir, col.Volumes)
	}
	if _, ok := c.Volumes[vol]; !ok {
		t.Errorf("volume %s is not declared", vol)
	}
	if col.DependsOn["otel-storage-init"] != "service_completed_successfully" {
		t.Errorf("collector depends_on %v: want otel-storage-init: service_completed_successfully", col.DependsOn)
	}
	initSvc := c.Services["otel-storage-init"]
	if volumeAt("otel-storage-init", dir) != vol || !strings.Contains(strings.Join(initSvc.Command, " "), "chown -R 10001:10001 "+dir) {
		t.Errorf("otel-storage-init must chown volume %s at %s to the collector's user: %v %v", vol, dir, initSvc.Volumes, initSvc.Command)
	}
}
