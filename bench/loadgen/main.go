// Command loadgen drives an HTTPS API server from a compiled process, so that the load client is not
// what limits the figures. It uses only the standard library.
//
// Modes:
//
//	post   POST a body template to -path, with {{NAME}} replaced by a unique name per request
//	get    GET -path repeatedly
//	list   list -path fully (following continue tokens when -limit is set), -n times in a row
//	watch  open -watchers watch streams on -path, create objects there at -rate per second, and
//	       measure, per object and watcher, event receive time minus create response time
//
// Every mode is bounded by -n (a count) and/or -duration, and by -max-duration in any case. The
// result is one JSON object on standard output.
//
// Identity: a client certificate (-cert, -key) and/or a bearer token read from -token-file. A body
// template may also hold {{SLOT}}, replaced by 1 + (request number - 1) mod -slots, to spread objects
// over a fixed set of names (for example pods over nodes).
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

type options struct {
	mode        string
	base        string
	path        string
	ca          string
	cert        string
	key         string
	bodyFile    string
	prefix      string
	concurrency int
	count       int
	duration    time.Duration
	maxDuration time.Duration
	limit       int
	watchers    int
	rate        float64
	grace       time.Duration
	tokenFile   string
	slots       int
}

// bearer is the Authorization header value sent with every request, or empty.
var bearer string

func parseFlags() options {
	var o options
	flag.StringVar(&o.mode, "mode", "post", "post | get | list | watch")
	flag.StringVar(&o.base, "url", "https://127.0.0.1:6443", "server base URL")
	flag.StringVar(&o.path, "path", "/api/v1/namespaces/default/pods", "request path")
	flag.StringVar(&o.ca, "ca", "", "CA certificate (PEM)")
	flag.StringVar(&o.cert, "cert", "", "client certificate (PEM)")
	flag.StringVar(&o.key, "key", "", "client key (PEM)")
	flag.StringVar(&o.bodyFile, "body", "", "POST body template; {{NAME}} is replaced by a unique name")
	flag.StringVar(&o.prefix, "prefix", "lg", "name prefix for created objects")
	flag.IntVar(&o.concurrency, "c", 32, "concurrent connections (workers)")
	flag.IntVar(&o.count, "n", 0, "number of requests (list: number of full lists); 0 = until -duration")
	flag.DurationVar(&o.duration, "duration", 0, "how long to run (watch: how long to write)")
	flag.DurationVar(&o.maxDuration, "max-duration", 5*time.Minute, "hard upper bound on the run")
	flag.IntVar(&o.limit, "limit", 0, "list page size; 0 = one request for the whole list")
	flag.IntVar(&o.watchers, "watchers", 100, "watch streams (watch mode)")
	flag.Float64Var(&o.rate, "rate", 200, "creates per second (watch mode)")
	flag.DurationVar(&o.grace, "grace", 5*time.Second, "watch mode: how long to wait for late events")
	flag.StringVar(&o.tokenFile, "token-file", "", "send the token in this file as an Authorization: Bearer header")
	flag.IntVar(&o.slots, "slots", 1, "number of distinct {{SLOT}} values in the body template")
	flag.Parse()
	return o
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "loadgen: "+format+"\n", args...)
	os.Exit(2)
}

func tlsConfig(o options) *tls.Config {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.ca != "" {
		pem, err := os.ReadFile(o.ca)
		if err != nil {
			fail("read CA: %v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			fail("no certificate in %s", o.ca)
		}
		cfg.RootCAs = pool
	}
	if o.cert != "" {
		pair, err := tls.LoadX509KeyPair(o.cert, o.key)
		if err != nil {
			fail("load client certificate: %v", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg
}

// newClient returns a keep-alive HTTP/1.1 client with at most conns connections.
func newClient(o options, conns int, timeout time.Duration) *http.Client {
	transport := &http.Transport{
		TLSClientConfig:     tlsConfig(o),
		MaxConnsPerHost:     conns,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}
	return &http.Client{Transport: transport, Timeout: timeout}
}

// ---- statistics ----

type summary struct {
	Count int     `json:"count"`
	Mean  float64 `json:"mean"`
	Min   float64 `json:"min"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	Max   float64 `json:"max"`
}

// summarize returns nearest-rank percentiles of values (milliseconds).
func summarize(values []float64) summary {
	if len(values) == 0 {
		return summary{}
	}
	sorted := append([]float64(nil), values...)
	sort.Float64s(sorted)
	rank := func(p float64) float64 {
		i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
		if i < 0 {
			i = 0
		}
		return round3(sorted[i])
	}
	total := 0.0
	for _, v := range sorted {
		total += v
	}
	return summary{
		Count: len(sorted),
		Mean:  round3(total / float64(len(sorted))),
		Min:   round3(sorted[0]),
		P50:   rank(50),
		P90:   rank(90),
		P99:   rank(99),
		Max:   round3(sorted[len(sorted)-1]),
	}
}

func round3(v float64) float64 { return math.Round(v*1000) / 1000 }

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func emit(v any) {
	out, err := json.Marshal(v)
	if err != nil {
		fail("encode result: %v", err)
	}
	fmt.Println(string(out))
}

// ---- request helpers ----

// template is a body split around its placeholders: parts[i] is followed by the value of holes[i].
type template struct {
	parts [][]byte
	holes []string
	slots int
}

var placeholders = [][]byte{[]byte("{{NAME}}"), []byte("{{SLOT}}")}

func loadTemplate(path string, slots int) template {
	if path == "" {
		fail("-body is required for this mode")
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		fail("read body: %v", err)
	}
	if slots < 1 {
		fail("-slots must be at least 1")
	}
	t := template{slots: slots}
	for len(raw) > 0 {
		at, which := -1, ""
		for _, p := range placeholders {
			if i := bytes.Index(raw, p); i >= 0 && (at < 0 || i < at) {
				at, which = i, string(p)
			}
		}
		if at < 0 {
			break
		}
		t.parts = append(t.parts, raw[:at])
		t.holes = append(t.holes, which)
		raw = raw[at+len(which):]
	}
	t.parts = append(t.parts, raw)
	named := false
	for _, h := range t.holes {
		named = named || h == "{{NAME}}"
	}
	if !named {
		fail("body template %s has no {{NAME}}", path)
	}
	return t
}

// render fills the template for request number n (1-based) named name.
func (t template) render(name string, n int64) []byte {
	slot := strconv.FormatInt((n-1)%int64(t.slots)+1, 10)
	out := make([]byte, 0, 512)
	for i, part := range t.parts {
		out = append(out, part...)
		if i < len(t.holes) {
			if t.holes[i] == "{{NAME}}" {
				out = append(out, name...)
			} else {
				out = append(out, slot...)
			}
		}
	}
	return out
}

// do sends one request and reads the whole response body; it returns the status (0 on a transport error).
func do(ctx context.Context, client *http.Client, method, target string, body []byte) (int, []byte, error) {
	var reader io.Reader
	if body != nil {
		reader = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, reader)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Accept", "application/json")
	if bearer != "" {
		req.Header.Set("Authorization", bearer)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	data, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return 0, nil, err
	}
	return resp.StatusCode, data, nil
}

// ---- post and get: closed loop, N workers ----

type loadResult struct {
	Mode        string         `json:"mode"`
	Concurrency int            `json:"concurrency"`
	Requests    int            `json:"requests"`
	OK          int            `json:"ok"`
	Errors      int            `json:"errors"`
	Status      map[string]int `json:"status"`
	ElapsedS    float64        `json:"elapsed_s"`
	RPS         float64        `json:"rps"`
	LatencyMs   summary        `json:"latency_ms"`
	FirstError  string         `json:"first_error,omitempty"`
}

func runLoad(o options) {
	if o.count <= 0 && o.duration <= 0 {
		fail("give -n or -duration")
	}
	var tmpl template
	if o.mode == "post" {
		tmpl = loadTemplate(o.bodyFile, o.slots)
	}
	client := newClient(o, o.concurrency, 30*time.Second)
	target := o.base + o.path
	bound := o.maxDuration
	if o.duration > 0 && o.duration < bound {
		bound = o.duration
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.maxDuration+30*time.Second)
	defer cancel()

	var seq atomic.Int64
	var firstErr atomic.Value
	latencies := make([][]float64, o.concurrency)
	statuses := make([]map[int]int, o.concurrency)
	start := time.Now()
	deadline := start.Add(bound)
	var wg sync.WaitGroup
	for w := 0; w < o.concurrency; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			statuses[w] = map[int]int{}
			for time.Now().Before(deadline) {
				n := seq.Add(1)
				if o.count > 0 && n > int64(o.count) {
					return
				}
				var body []byte
				method := http.MethodGet
				if o.mode == "post" {
					method = http.MethodPost
					body = tmpl.render(o.prefix+"-"+strconv.FormatInt(n, 10), n)
				}
				began := time.Now()
				status, data, err := do(ctx, client, method, target, body)
				latencies[w] = append(latencies[w], ms(time.Since(began)))
				statuses[w][status]++
				if err != nil {
					firstErr.CompareAndSwap(nil, err.Error())
				} else if status >= 300 {
					firstErr.CompareAndSwap(nil, fmt.Sprintf("%d: %.300s", status, data))
				}
			}
		}(w)
	}
	wg.Wait()
	elapsed := time.Since(start)

	res := loadResult{Mode: o.mode, Concurrency: o.concurrency, Status: map[string]int{}}
	var all []float64
	for w := range latencies {
		all = append(all, latencies[w]...)
		for status, n := range statuses[w] {
			res.Status[strconv.Itoa(status)] += n
			res.Requests += n
			if status >= 200 && status < 300 {
				res.OK += n
			} else {
				res.Errors += n
			}
		}
	}
	res.ElapsedS = round3(elapsed.Seconds())
	res.RPS = round3(float64(res.OK) / elapsed.Seconds())
	res.LatencyMs = summarize(all)
	if e, ok := firstErr.Load().(string); ok {
		res.FirstError = e
	}
	emit(res)
}

// ---- list: sequential full lists ----

type listPage struct {
	Metadata struct {
		Continue        string `json:"continue"`
		ResourceVersion string `json:"resourceVersion"`
	} `json:"metadata"`
	Items []json.RawMessage `json:"items"`
}

type listResult struct {
	Mode         string  `json:"mode"`
	Limit        int     `json:"limit"`
	Lists        int     `json:"lists"`
	ItemsPerList int     `json:"items_per_list"`
	PagesPerList int     `json:"pages_per_list"`
	BytesPerList int     `json:"bytes_per_list"`
	ListMs       summary `json:"list_ms"`
	PageMs       summary `json:"page_ms"`
}

func runList(o options) {
	if o.count <= 0 {
		fail("list mode needs -n")
	}
	client := newClient(o, 1, 60*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), o.maxDuration)
	defer cancel()
	res := listResult{Mode: "list", Limit: o.limit}
	var lists, pages []float64
	for i := 0; i < o.count && ctx.Err() == nil; i++ {
		began := time.Now()
		token := ""
		items, nPages, nBytes := 0, 0, 0
		for {
			query := url.Values{}
			if o.limit > 0 {
				query.Set("limit", strconv.Itoa(o.limit))
			}
			if token != "" {
				query.Set("continue", token)
			}
			target := o.base + o.path
			if len(query) > 0 {
				target += "?" + query.Encode()
			}
			pageBegan := time.Now()
			status, data, err := do(ctx, client, http.MethodGet, target, nil)
			pageTime := time.Since(pageBegan)
			if err != nil || status != http.StatusOK {
				fail("list %s: status %d, %v: %.300s", target, status, err, data)
			}
			// Decoding is the client's work, not the server's: it is kept out of the timings.
			paused := time.Now()
			var page listPage
			if err := json.Unmarshal(data, &page); err != nil {
				fail("decode list: %v", err)
			}
			began = began.Add(time.Since(paused))
			pages = append(pages, ms(pageTime))
			items += len(page.Items)
			nBytes += len(data)
			nPages++
			token = page.Metadata.Continue
			if token == "" || o.limit == 0 {
				break
			}
		}
		lists = append(lists, ms(time.Since(began)))
		res.Lists++
		res.ItemsPerList, res.PagesPerList, res.BytesPerList = items, nPages, nBytes
	}
	res.ListMs = summarize(lists)
	res.PageMs = summarize(pages)
	emit(res)
}

// ---- watch: paced writer and many watchers ----

type watchResult struct {
	Mode          string         `json:"mode"`
	Watchers      int            `json:"watchers"`
	TargetRate    float64        `json:"target_rate"`
	AchievedRate  float64        `json:"achieved_rate"`
	Creates       int            `json:"creates"`
	CreateStatus  map[string]int `json:"create_status"`
	CreateMs      summary        `json:"create_ms"`
	Expected      int            `json:"events_expected"`
	Received      int            `json:"events_received"`
	BeforeResp    int            `json:"events_before_response"`
	LatencyMs     summary        `json:"latency_ms"`
	FromRequestMs summary        `json:"from_request_ms"`
	FirstError    string         `json:"first_error,omitempty"`
}

// nameIndex finds `"name":"<prefix>-<n>"` in an event line and returns n.
func nameIndex(line, marker []byte) (int, bool) {
	at := bytes.Index(line, marker)
	if at < 0 {
		return 0, false
	}
	rest := line[at+len(marker):]
	end := bytes.IndexByte(rest, '"')
	if end <= 0 {
		return 0, false
	}
	n, err := strconv.Atoi(string(rest[:end]))
	if err != nil {
		return 0, false
	}
	return n, true
}

func startRV(ctx context.Context, client *http.Client, o options) string {
	status, data, err := do(ctx, client, http.MethodGet, o.base+o.path+"?limit=1", nil)
	if err != nil || status != http.StatusOK {
		fail("list before watch: status %d, %v: %.300s", status, err, data)
	}
	var page listPage
	if err := json.Unmarshal(data, &page); err != nil {
		fail("decode list: %v", err)
	}
	return page.Metadata.ResourceVersion
}

func runWatch(o options) {
	if o.duration <= 0 || o.rate <= 0 {
		fail("watch mode needs -duration and -rate")
	}
	if o.duration > o.maxDuration {
		o.duration = o.maxDuration
	}
	tmpl := loadTemplate(o.bodyFile, o.slots)
	total := int(o.rate * o.duration.Seconds())
	writer := newClient(o, o.concurrency, 30*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), o.maxDuration+o.grace+30*time.Second)
	defer cancel()
	rv := startRV(ctx, writer, o)
	t0 := time.Now()
	since := func() int64 { return int64(time.Since(t0)) }

	// Watchers: each on its own connection; recv[w][i] is when watcher w saw object i (0 = not seen).
	recv := make([][]int64, o.watchers)
	var seen atomic.Int64
	watchCtx, stopWatches := context.WithCancel(ctx)
	defer stopWatches()
	watchClient := newClient(o, o.watchers, 0)
	marker := []byte(`"name":"` + o.prefix + "-")
	watchURL := fmt.Sprintf("%s%s?watch=1&resourceVersion=%s&timeoutSeconds=%d",
		o.base, o.path, url.QueryEscape(rv), int((o.maxDuration + o.grace).Seconds()))
	var ready, done sync.WaitGroup
	var watchErr atomic.Value
	for w := 0; w < o.watchers; w++ {
		recv[w] = make([]int64, total)
		ready.Add(1)
		done.Add(1)
		go func(w int) {
			defer done.Done()
			opened := false
			defer func() {
				if !opened {
					ready.Done()
				}
			}()
			req, _ := http.NewRequestWithContext(watchCtx, http.MethodGet, watchURL, nil)
			if bearer != "" {
				req.Header.Set("Authorization", bearer)
			}
			resp, err := watchClient.Do(req)
			if err != nil {
				watchErr.CompareAndSwap(nil, err.Error())
				return
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				watchErr.CompareAndSwap(nil, fmt.Sprintf("watch status %d", resp.StatusCode))
				return
			}
			opened = true
			ready.Done()
			reader := bufio.NewReaderSize(resp.Body, 1<<16)
			mine := recv[w]
			for {
				line, err := reader.ReadBytes('\n')
				if len(line) > 0 {
					at := since()
					if i, ok := nameIndex(line, marker); ok && i >= 0 && i < total && mine[i] == 0 {
						mine[i] = at
						seen.Add(1)
					}
				}
				if err != nil {
					return
				}
			}
		}(w)
	}
	ready.Wait()
	if e, ok := watchErr.Load().(string); ok {
		fail("opening watches: %s", e)
	}
	// The server has sent the response headers of every watch; give it a moment to settle.
	time.Sleep(200 * time.Millisecond)

	// Paced writer: object i is due at start + i/rate, handed to the next free worker.
	sent := make([]int64, total)
	answered := make([]int64, total)
	codes := make([]int, total)
	var firstErr atomic.Value
	jobs := make(chan int, total)
	var writers sync.WaitGroup
	for k := 0; k < o.concurrency; k++ {
		writers.Add(1)
		go func() {
			defer writers.Done()
			for i := range jobs {
				body := tmpl.render(o.prefix+"-"+strconv.Itoa(i), int64(i)+1)
				sent[i] = since()
				status, data, err := do(ctx, writer, http.MethodPost, o.base+o.path, body)
				answered[i] = since()
				codes[i] = status
				if err != nil {
					firstErr.CompareAndSwap(nil, err.Error())
				} else if status != http.StatusCreated {
					firstErr.CompareAndSwap(nil, fmt.Sprintf("%d: %.300s", status, data))
				}
			}
		}()
	}
	writeStart := time.Now()
	interval := float64(time.Second) / o.rate
	for i := 0; i < total; i++ {
		due := writeStart.Add(time.Duration(float64(i) * interval))
		if wait := time.Until(due); wait > 0 {
			time.Sleep(wait)
		}
		jobs <- i
	}
	close(jobs)
	writers.Wait()
	writeElapsed := time.Since(writeStart)

	created := 0
	status := map[string]int{}
	var createMs []float64
	for i := 0; i < total; i++ {
		status[strconv.Itoa(codes[i])]++
		if codes[i] == http.StatusCreated {
			created++
			createMs = append(createMs, float64(answered[i]-sent[i])/1e6)
		}
	}
	expected := int64(created * o.watchers)
	graceEnd := time.Now().Add(o.grace)
	for seen.Load() < expected && time.Now().Before(graceEnd) {
		time.Sleep(20 * time.Millisecond)
	}
	stopWatches()
	done.Wait()

	var latency, fromRequest []float64
	before := 0
	for w := 0; w < o.watchers; w++ {
		for i := 0; i < total; i++ {
			if codes[i] != http.StatusCreated || recv[w][i] == 0 {
				continue
			}
			lat := float64(recv[w][i]-answered[i]) / 1e6
			if lat < 0 {
				before++
			}
			latency = append(latency, lat)
			fromRequest = append(fromRequest, float64(recv[w][i]-sent[i])/1e6)
		}
	}
	res := watchResult{
		Mode:          "watch",
		Watchers:      o.watchers,
		TargetRate:    o.rate,
		AchievedRate:  round3(float64(created) / writeElapsed.Seconds()),
		Creates:       created,
		CreateStatus:  status,
		CreateMs:      summarize(createMs),
		Expected:      int(expected),
		Received:      len(latency),
		BeforeResp:    before,
		LatencyMs:     summarize(latency),
		FromRequestMs: summarize(fromRequest),
	}
	if e, ok := firstErr.Load().(string); ok {
		res.FirstError = e
	}
	emit(res)
}

func main() {
	o := parseFlags()
	if o.concurrency < 1 {
		fail("-c must be at least 1")
	}
	if o.tokenFile != "" {
		raw, err := os.ReadFile(o.tokenFile)
		if err != nil {
			fail("read token: %v", err)
		}
		bearer = "Bearer " + string(bytes.TrimSpace(raw))
	}
	switch o.mode {
	case "post", "get":
		runLoad(o)
	case "list":
		runList(o)
	case "watch":
		runWatch(o)
	default:
		fail("unknown mode %q", o.mode)
	}
}
