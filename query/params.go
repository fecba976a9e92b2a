package query

import (
	"net/url"
	"slices"
	"strconv"
	"time"
)

// The query parameters of GET /audit/events, in the order they are checked.
var params = []string{
	"since", "until", "event", "action", "resource_type", "resource",
	"status", "trace_id", "principal", "client", "order", "limit", "cursor",
}

// ParseRequest parses the query parameters of GET /audit/events:
//
//	since, until   RFC 3339 times, or durations back from now (24h, 90m):
//	               since inclusive, until exclusive
//	event, action, resource_type, resource, status, trace_id, principal, client
//	               exact matches (see Filter); status is initiated, success, failed or denied
//	order          newest (the default) or oldest; default with a cursor: the cursor's order
//	limit          events per page, 1 to MaxLimit (default DefaultLimit)
//	cursor         next_cursor of the previous page
//
// An empty value is the same as an absent parameter. Errors are *ParamError,
// naming the parameter: a bad value, a parameter given twice, an unknown one.
func ParseRequest(v url.Values) (Request, error) {
	keys := make([]string, 0, len(v))
	for k := range v {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !slices.Contains(params, k) {
			return Request{}, paramErr(k, "unknown parameter")
		}
		if len(v[k]) > 1 {
			return Request{}, paramErr(k, "given more than once")
		}
	}
	var req Request
	f := &req.Filter
	now := time.Now()
	for _, t := range []struct {
		name string
		dst  *time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		if s := v.Get(t.name); s != "" {
			tm, err := time.Parse(time.RFC3339, s)
			if err != nil {
				d, derr := time.ParseDuration(s)
				if derr != nil || d < 0 {
					return Request{}, paramErr(t.name, "not an RFC 3339 time (like 2006-01-02T15:04:05Z) or a duration back from now (like 24h): %q", s)
				}
				tm = now.Add(-d)
			}
			*t.dst = tm
		}
	}
	f.Event, f.Action = v.Get("event"), v.Get("action")
	f.ResourceType, f.Resource = v.Get("resource_type"), v.Get("resource")
	f.Status, f.TraceID = v.Get("status"), v.Get("trace_id")
	f.Principal, f.Client = v.Get("principal"), v.Get("client")
	req.Cursor = v.Get("cursor")
	if s := v.Get("order"); s != "" {
		o, err := ParseOrder(s)
		if err != nil {
			return Request{}, paramErr("order", "must be newest or oldest, not %q", s)
		}
		req.Order = o
	} else if req.Cursor != "" {
		if c, err := decodeCursor(req.Cursor); err == nil {
			req.Order = c.order
		}
	}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 || n > MaxLimit {
			return Request{}, paramErr("limit", "must be a positive integer not above %d, not %q", MaxLimit, s)
		}
		req.Limit = n
	}
	if _, err := compile(req); err != nil {
		return Request{}, err
	}
	return req, nil
}
