package handler

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"
)

// ReadAlertConfig reads an alert configuration file into o (see
// ParseAlertConfig).
func ReadAlertConfig(path string, o *AlertOptions) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := ParseAlertConfig(data, o); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// ParseAlertConfig sets o.Rules (and o.MaxKeys, if given) from a JSON
// configuration:
//
//	{
//	  "defaults": true,                  // start from DefaultAlertRules (default true)
//	  "max_keys": 10000,                 // AlertOptions.MaxKeys
//	  "rules": [
//	    {"id": "credential_probing", "threshold": 20},          // change a default rule: only the fields given
//	    {"id": "admin_failures", "disabled": true},              // drop a default rule
//	    {"id": "bulk_delete", "match": [{"event": ["credential_access"], "action": ["delete"]}],
//	     "by": "principal", "window": "10m", "threshold": 5, "severity": "ERROR"}  // a new rule
//	  ]
//	}
//
// A rule's fields are those of AlertRule in snake case: id, description,
// match (a list of {event, action, resource_type, resource, status, reason},
// each a list of values), by, distinct, window and cooldown (Go durations
// such as "90s" or "1h"), threshold, first_seen, known, severity (DEBUG,
// INFO, WARN, ERROR), and disabled. Unknown fields are errors. Comments are
// not JSON: the // above are for this documentation only.
func ParseAlertConfig(data []byte, o *AlertOptions) error {
	var f struct {
		Defaults *bool             `json:"defaults"`
		MaxKeys  int               `json:"max_keys"`
		Rules    []json.RawMessage `json:"rules"`
	}
	if err := strictDecode(data, &f); err != nil {
		return fmt.Errorf("alert config: %w", err)
	}
	if f.MaxKeys < 0 {
		return errors.New("alert config: max_keys must not be negative")
	}
	var rules []ruleJSON
	if f.Defaults == nil || *f.Defaults {
		for _, r := range DefaultAlertRules() {
			rules = append(rules, toJSON(r))
		}
	}
	for i, raw := range f.Rules {
		var id struct {
			ID    string          `json:"id"`
			Match json.RawMessage `json:"match"`
			Known json.RawMessage `json:"known"`
		}
		if err := json.Unmarshal(raw, &id); err != nil || id.ID == "" {
			return fmt.Errorf("alert config: rule %d: an id is required", i+1)
		}
		j := -1
		for k := range rules {
			if rules[k].ID == id.ID {
				j = k
			}
		}
		if j < 0 {
			// A new rule: it must say what it counts. (An id that was
			// meant to name a default rule, misspelt, lands here too.)
			if id.Match == nil {
				return fmt.Errorf("alert config: rule %q: no rule of that id to change, and a new rule needs a match", id.ID)
			}
			rules = append(rules, ruleJSON{})
			j = len(rules) - 1
		}
		// encoding/json decodes a list into the elements already there:
		// a list given replaces the default's as a whole.
		if id.Match != nil {
			rules[j].Match = nil
		}
		if id.Known != nil {
			rules[j].Known = nil
		}
		if err := strictDecode(raw, &rules[j]); err != nil {
			return fmt.Errorf("alert config: rule %q: %w", id.ID, err)
		}
		if id.Match != nil && len(rules[j].Match) == 0 {
			return fmt.Errorf("alert config: rule %q: an empty match list would match every event", id.ID)
		}
	}
	out := []AlertRule{} // not nil: a config without rules means none
	for _, rj := range rules {
		if rj.Disabled {
			continue
		}
		r, err := rj.rule()
		if err != nil {
			return fmt.Errorf("alert config: rule %q: %w", rj.ID, err)
		}
		if err := validRule(&r); err != nil {
			return err
		}
		out = append(out, r)
	}
	o.Rules = out
	if f.MaxKeys > 0 {
		o.MaxKeys = f.MaxKeys
	}
	return nil
}

func strictDecode(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the JSON object")
	}
	return nil
}

type ruleJSON struct {
	ID          string       `json:"id"`
	Description string       `json:"description,omitempty"`
	Match       []AlertMatch `json:"match,omitempty"`
	By          string       `json:"by,omitempty"`
	Distinct    string       `json:"distinct,omitempty"`
	Window      string       `json:"window,omitempty"`
	Threshold   int          `json:"threshold,omitempty"`
	FirstSeen   bool         `json:"first_seen,omitempty"`
	Known       []string     `json:"known,omitempty"`
	Severity    string       `json:"severity,omitempty"`
	Cooldown    string       `json:"cooldown,omitempty"`
	Disabled    bool         `json:"disabled,omitempty"`
}

func toJSON(r AlertRule) ruleJSON {
	rj := ruleJSON{ID: r.ID, Description: r.Description, Match: r.Match, By: r.By, Distinct: r.Distinct,
		Threshold: r.Threshold, FirstSeen: r.FirstSeen, Known: r.Known, Severity: r.Severity.String()}
	if r.Window != 0 {
		rj.Window = r.Window.String()
	}
	if r.Cooldown != 0 {
		rj.Cooldown = r.Cooldown.String()
	}
	return rj
}

func (rj ruleJSON) rule() (AlertRule, error) {
	r := AlertRule{ID: rj.ID, Description: rj.Description, Match: rj.Match, By: rj.By, Distinct: rj.Distinct,
		Threshold: rj.Threshold, FirstSeen: rj.FirstSeen, Known: rj.Known}
	if r.By == "" {
		r.By = ByAll
	}
	for _, d := range []struct {
		name string
		s    string
		dst  *time.Duration
	}{{"window", rj.Window, &r.Window}, {"cooldown", rj.Cooldown, &r.Cooldown}} {
		if d.s == "" {
			continue
		}
		v, err := time.ParseDuration(d.s)
		if err != nil {
			return r, fmt.Errorf("%s: %w", d.name, err)
		}
		*d.dst = v
	}
	if rj.Severity != "" {
		if err := r.Severity.UnmarshalText([]byte(rj.Severity)); err != nil {
			return r, fmt.Errorf("severity: %w", err)
		}
	} else {
		r.Severity = slog.LevelWarn
	}
	return r, nil
}
