// crawl_go: Go's peer of weft-bench's crawl workload (bench/crawl.c), written
// the way a Go program crawls: net/http's client (keep-alive pools of the
// default Transport, sized for the concurrency), a goroutine per admitted
// URL, a semaphore for the requests in flight in all and one per host, and
// links found by golang.org/x/net/html's tokenizer.
//
//	crawl_go [-c 256] [-timeout-ms 1000] [-log FILE] THREADS PORT
//
// It crawls examples/site on 127.0.0.1:PORT from /page/0 as weft-bench crawl
// does: every URL reachable from there is fetched at most once, at most C
// requests in flight in all and C on the one host (weft-bench's concurrency
// and per_host), a request timeout of MS milliseconds (connect, headers and
// body), no retries. Redirects are not followed inside a request: a 3xx
// counts as a page, and its Location is admitted as a link is, as weft's
// crawler does. Links are the href of every <a> (the first href of an
// element) of a 2xx text/html body, resolved against the page's URL or its
// first <base href>, without the fragment, on the seed's origin only; a URL
// is admitted once under its canonical form (scheme and host in lower case,
// the default port dropped, dot segments removed, the query kept).
// GOMAXPROCS = THREADS. Prints one line in weft-bench's format:
//
//	RESULT crawl go <threads> pages_per_s=... cpu_us_per_page=...
//	       peak_rss_kb=... pages=... errors=... timeouts=... wall_ms=...
//
// pages counts the responses received (any status), pages_per_s divides it
// by the crawl's wall time, cpu_us_per_page divides the process's user +
// system CPU time over the crawl (getrusage) by it, peak_rss_kb is VmHWM.
// -log FILE writes one line per URL, "<status> <url>" or "timeout <url>" (as
// examples/crawler --log does), to compare the set of pages with weft's.
// Exits 1 if nothing was fetched or a URL failed otherwise than by a
// timeout (as weft-bench crawl does), 2 on a usage error.
//
// Build offline against Debian's golang-golang-x-net-dev (bench/crawl.sh does):
//
//	cd bench/crawl_go && GOPATH=/usr/share/gocode GO111MODULE=off GOFLAGS= go build
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/html"
)

const maxBody = 8 << 20 // weft's crawler's default max_body

type crawler struct {
	client   *http.Client
	origin   string        // "http://127.0.0.1:PORT": the one origin followed
	inFlight chan struct{} // the global semaphore (concurrency)

	mu      sync.Mutex
	seen    map[string]bool          // every URL ever admitted
	perHost map[string]chan struct{} // the per-host semaphores
	perCap  int
	wg      sync.WaitGroup // one per admitted URL not yet done

	pages, errs, timeouts atomic.Uint64
	firstErr              atomic.Value // string: the first non-timeout error

	logMu sync.Mutex
	log   *bufio.Writer // -log: "<status> <url>" or "<error> <url>" per URL
}

func (c *crawler) report(what, u string) {
	if c.log == nil {
		return
	}
	c.logMu.Lock()
	fmt.Fprintf(c.log, "%s %s\n", what, u)
	c.logMu.Unlock()
}

// canonical returns u's canonical form, or "" if it is not a crawlable
// http(s) URL: scheme and host in lower case, no default port, no user
// info, no fragment, "/" for an empty path, the query as written.
func canonical(u *url.URL) string {
	scheme := strings.ToLower(u.Scheme)
	if (scheme != "http" && scheme != "https") || u.Host == "" || u.User != nil {
		return ""
	}
	host := strings.ToLower(u.Hostname())
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n <= 0 || n > 65535 {
			return ""
		}
		if !(scheme == "http" && n == 80) && !(scheme == "https" && n == 443) {
			host += ":" + strconv.Itoa(n)
		}
	}
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	s := scheme + "://" + host + path
	if u.RawQuery != "" || u.ForceQuery {
		s += "?" + u.RawQuery
	}
	return s
}

// resolve resolves ref against base and returns its canonical form ("" if
// it does not parse or is not crawlable). ResolveReference removes dot
// segments (RFC 3986 5.2), for absolute references too.
func resolve(base *url.URL, ref string) string {
	r, err := url.Parse(strings.TrimSpace(ref))
	if err != nil {
		return ""
	}
	return canonical(base.ResolveReference(r))
}

// admit queues url (canonical) for a fetch unless it was seen before or is
// on another origin.
func (c *crawler) admit(u string) {
	if !strings.HasPrefix(u, c.origin) || (len(u) > len(c.origin) && u[len(c.origin)] != '/' && u[len(c.origin)] != '?') {
		return
	}
	c.mu.Lock()
	if c.seen[u] {
		c.mu.Unlock()
		return
	}
	c.seen[u] = true
	c.mu.Unlock()
	c.wg.Add(1)
	go c.fetch(u)
}

func (c *crawler) hostSem(host string) chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.perHost[host]
	if s == nil {
		s = make(chan struct{}, c.perCap)
		c.perHost[host] = s
	}
	return s
}

func (c *crawler) fail(u string, err error) {
	c.errs.Add(1)
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		c.timeouts.Add(1)
		c.report("timeout", u)
		return
	}
	c.report("error", u)
	c.firstErr.CompareAndSwap(nil, u+": "+err.Error())
}

func (c *crawler) fetch(u string) {
	defer c.wg.Done()
	c.inFlight <- struct{}{}
	defer func() { <-c.inFlight }()
	base, err := url.Parse(u)
	if err != nil {
		c.fail(u, err)
		return
	}
	hs := c.hostSem(base.Host)
	hs <- struct{}{}
	status, location, body, isHTML, err := c.get(u)
	<-hs
	if err != nil {
		c.fail(u, err)
		return
	}
	c.pages.Add(1)
	c.report(strconv.Itoa(status), u)
	switch {
	case status == 301 || status == 302 || status == 303 || status == 307 || status == 308:
		if location != "" {
			if t := resolve(base, location); t != "" {
				c.admit(t)
			}
		}
	case status/100 == 2 && isHTML:
		c.follow(base, body)
	}
}

// get sends one GET and reads the whole response within the client's
// timeout.
func (c *crawler) get(u string) (status int, location string, body []byte, isHTML bool, err error) {
	req, err := http.NewRequest("GET", u, nil)
	if err != nil {
		return 0, "", nil, false, err
	}
	req.Header.Set("Accept", "text/html, */*;q=0.5")
	resp, err := c.client.Do(req)
	if err != nil {
		return 0, "", nil, false, err
	}
	defer resp.Body.Close()
	isHTML = strings.HasPrefix(strings.ToLower(resp.Header.Get("Content-Type")), "text/html")
	want := resp.StatusCode/100 == 2 && isHTML
	if want {
		body, err = io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
		if err == nil && len(body) > maxBody {
			err = errors.New("body too large")
		}
	} else {
		_, err = io.Copy(io.Discard, io.LimitReader(resp.Body, maxBody)) // keep-alive
	}
	if err != nil {
		return 0, "", nil, false, err
	}
	return resp.StatusCode, resp.Header.Get("Location"), body, isHTML, nil
}

// follow admits the target of every <a href> of an HTML body, resolved
// against the page's URL or its first <base href>.
func (c *crawler) follow(page *url.URL, body []byte) {
	var hrefs []string
	var baseHref string
	haveBase := false
	z := html.NewTokenizer(bytes.NewReader(body))
	for {
		tt := z.Next()
		if tt == html.ErrorToken {
			break
		}
		if tt != html.StartTagToken && tt != html.SelfClosingTagToken {
			continue
		}
		name, hasAttr := z.TagName()
		isA := len(name) == 1 && name[0] == 'a'
		isBase := !haveBase && string(name) == "base"
		if !hasAttr || (!isA && !isBase) {
			continue
		}
		for more := true; more; {
			var k, v []byte
			k, v, more = z.TagAttr()
			if string(k) != "href" {
				continue
			}
			if isA {
				hrefs = append(hrefs, string(v))
			} else {
				baseHref, haveBase = string(v), true
			}
			break
		}
	}
	base := page
	if haveBase {
		if b, err := url.Parse(strings.TrimSpace(baseHref)); err == nil {
			base = page.ResolveReference(b)
		}
	}
	for _, h := range hrefs {
		if t := resolve(base, h); t != "" {
			c.admit(t)
		}
	}
}

func cpuMicros() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return float64(ru.Utime.Sec+ru.Stime.Sec)*1e6 + float64(ru.Utime.Usec+ru.Stime.Usec)
}

// vmHWM is the process's peak resident set in KiB, from /proc/self/status.
func vmHWM() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if line := s.Text(); strings.HasPrefix(line, "VmHWM:") {
			rest := strings.TrimSpace(strings.TrimPrefix(line, "VmHWM:"))
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(rest, "kB")), 10, 64)
			return n
		}
	}
	return 0
}

func main() {
	conc := flag.Int("c", 256, "requests in flight in all and per host")
	timeoutMs := flag.Int("timeout-ms", 1000, "per request: connect, headers and body")
	logPath := flag.String("log", "", "write \"<status> <url>\" (or \"timeout <url>\") per URL to this file")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: crawl_go [-c 256] [-timeout-ms 1000] [-log FILE] THREADS PORT")
	}
	flag.Parse()
	if flag.NArg() != 2 {
		flag.Usage()
		os.Exit(2)
	}
	threads, err1 := strconv.Atoi(flag.Arg(0))
	port, err2 := strconv.Atoi(flag.Arg(1))
	if err1 != nil || err2 != nil || threads < 1 || port < 1 || port > 65535 || *conc < 1 || *timeoutMs < 1 {
		flag.Usage()
		os.Exit(2)
	}
	runtime.GOMAXPROCS(threads)

	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = *conc
	tr.MaxIdleConnsPerHost = *conc // the default, 2, would close most connections after each response
	tr.MaxConnsPerHost = *conc
	tr.DisableCompression = true // weft's crawler asks for no gzip either
	c := &crawler{
		client: &http.Client{
			Transport: tr,
			Timeout:   time.Duration(*timeoutMs) * time.Millisecond,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse // a 3xx is a page; its target is admitted
			},
		},
		origin:   fmt.Sprintf("http://127.0.0.1:%d", port),
		inFlight: make(chan struct{}, *conc),
		seen:     make(map[string]bool),
		perHost:  make(map[string]chan struct{}),
		perCap:   *conc,
	}

	if *logPath != "" {
		f, err := os.Create(*logPath)
		if err != nil {
			fmt.Fprintln(os.Stderr, "crawl_go:", err)
			os.Exit(1)
		}
		defer f.Close()
		c.log = bufio.NewWriter(f)
		defer c.log.Flush()
	}

	cpu0 := cpuMicros()
	t0 := time.Now()
	c.admit(c.origin + "/page/0")
	c.wg.Wait()
	wall := time.Since(t0)
	cpu := cpuMicros() - cpu0

	pages, errs, timeouts := c.pages.Load(), c.errs.Load(), c.timeouts.Load()
	if pages == 0 || errs != timeouts {
		first, _ := c.firstErr.Load().(string)
		fmt.Fprintf(os.Stderr, "crawl_go: %d pages, %d errors of which %d timeouts (is the site running on port %d?) %s\n",
			pages, errs, timeouts, port, first)
		if c.log != nil {
			c.log.Flush()
		}
		os.Exit(1)
	}
	ms := wall.Milliseconds()
	fmt.Printf("RESULT crawl go %d pages_per_s=%.0f cpu_us_per_page=%.1f peak_rss_kb=%d pages=%d errors=%d timeouts=%d wall_ms=%d\n",
		threads, float64(pages)/wall.Seconds(), cpu/float64(pages), vmHWM(), pages, errs, timeouts, ms)
}
