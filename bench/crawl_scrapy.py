#!/usr/bin/python3
"""crawl_scrapy.py: Scrapy's peer of weft-bench's crawl workload (bench/crawl.c).

    /usr/bin/python3 bench/crawl_scrapy.py [--concurrency 256]
        [--timeout-ms 1000] [--log FILE] PORT

A Scrapy spider (Debian's python3-scrapy, 2.8, run by /usr/bin/python3:
another python3 on PATH may lack it) crawling examples/site on
127.0.0.1:PORT from /page/0 as weft-bench crawl does: every URL reachable
from there fetched at most once, at most C requests in flight in all and C
on the one host (CONCURRENT_REQUESTS and CONCURRENT_REQUESTS_PER_DOMAIN),
keep-alive (Scrapy's HTTP/1.1 handler keeps a persistent pool per host), a
request timeout (DOWNLOAD_TIMEOUT), no retries, no redirects followed
inside a request: a 3xx counts as a page and its Location is admitted as a
link is, as weft's crawler does. Links are the href of every <a> of a 2xx
text/html body (lxml's HTML parser, through Scrapy's selectors), resolved
against the page's URL or its <base href> (response.urljoin), without the
fragment, on the seed's origin only, in canonical form (scheme and host in
lower case, no default port, dot segments removed, the query kept), so
that Scrapy's duplicate filter admits each URL once. No robots.txt,
cookies, compression or throttling: weft-bench crawl has none of them.

Prints one line in weft-bench's format:

    RESULT crawl scrapy 1 pages_per_s=... cpu_us_per_page=... peak_rss_kb=...
           pages=... errors=... timeouts=... wall_ms=...

(1: Scrapy runs on one thread, Twisted's reactor.) pages counts the
responses received (any status); the wall time runs from the first request
to the moment the spider goes idle; cpu_us_per_page divides the CPU time
(user + system, this process and its children, getrusage) over the same
span by pages. Start-up (imports, the reactor) is not counted, as it is not
for weft-bench and Go. --log FILE writes "<status> <url>" or "timeout <url>"
per URL, as examples/crawler --log does. Exits 1 if nothing was fetched or
a URL failed otherwise than by a timeout, 2 on a usage error.
"""

import argparse
import resource
import sys
import time
from urllib.parse import urlsplit, urlunsplit

try:
    import scrapy
    from scrapy import signals
    from scrapy.crawler import CrawlerProcess
    from twisted.internet.error import TimeoutError as TxTimeoutError
except ImportError as e:
    sys.stderr.write("crawl_scrapy: %s (apt-get install python3-scrapy; "
                     "run with /usr/bin/python3)\n" % e)
    sys.exit(1)


def remove_dots(path):
    """RFC 3986 5.2.4 remove_dot_segments for an absolute path."""
    out = []
    segs = path.split("/")
    for i, s in enumerate(segs[1:], 1):
        last = i == len(segs) - 1
        if s == "..":
            if len(out) > 0:
                out.pop()
            if last:
                out.append("")
        elif s == ".":
            if last:
                out.append("")
        else:
            out.append(s)
    return "/" + "/".join(out)


def canonical(url):
    """The canonical form of an absolute http(s) URL, or None."""
    try:
        u = urlsplit(url.strip())
        port = u.port
    except ValueError:
        return None
    scheme = u.scheme.lower()
    if scheme not in ("http", "https") or not u.hostname or u.username is not None:
        return None
    host = u.hostname.lower()
    if ":" in host:
        host = "[" + host + "]"
    if port is not None and port != {"http": 80, "https": 443}[scheme]:
        host += ":%d" % port
    path = remove_dots(u.path) if u.path else "/"
    return urlunsplit((scheme, host, path, u.query, ""))


def cpu_us():
    s = resource.getrusage(resource.RUSAGE_SELF)
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime) * 1e6


class SiteSpider(scrapy.Spider):
    name = "site"
    custom_settings = {}

    def __init__(self, port, log, **kw):
        super().__init__(**kw)
        self.origin = "http://127.0.0.1:%d" % port
        self.allowed_domains = ["127.0.0.1"]
        self.log_file = log
        self.pages = self.errors = self.timeouts = 0
        self.first_error = None
        self.t0 = self.cpu0 = None
        self.t1 = self.cpu1 = None

    @classmethod
    def from_crawler(cls, crawler, *args, **kw):
        spider = super().from_crawler(crawler, *args, **kw)
        crawler.signals.connect(spider.idle, signal=signals.spider_idle)
        return spider

    def idle(self):
        # The first time the spider goes idle the crawl is over (nothing
        # scheduled, nothing in flight).
        if self.t1 is None:
            self.t1 = time.monotonic()
            self.cpu1 = cpu_us()

    def report(self, what, url):
        if self.log_file:
            self.log_file.write("%s %s\n" % (what, url))

    def request(self, url):
        return scrapy.Request(url, callback=self.parse, errback=self.failed)

    def admit(self, url):
        url = canonical(url)
        if url and url.startswith(self.origin) and url[len(self.origin)] in "/?":
            return self.request(url)
        return None

    def start_requests(self):
        self.t0 = time.monotonic()
        self.cpu0 = cpu_us()
        yield self.request(self.origin + "/page/0")

    def parse(self, response):
        self.pages += 1
        self.report(str(response.status), response.url)
        if response.status in (301, 302, 303, 307, 308):
            loc = response.headers.get("Location")
            if loc:
                r = self.admit(response.urljoin(loc.decode("latin-1")))
                if r:
                    yield r
            return
        ctype = response.headers.get("Content-Type", b"").lower()
        if response.status // 100 != 2 or not ctype.startswith(b"text/html"):
            return
        for href in response.xpath("//a/@href").getall():
            r = self.admit(response.urljoin(href))
            if r:
                yield r

    def failed(self, failure):
        url = failure.request.url
        self.errors += 1
        if failure.check(TxTimeoutError):
            self.timeouts += 1
            self.report("timeout", url)
        else:
            self.report("error", url)
            if self.first_error is None:
                self.first_error = "%s: %s" % (url, failure.getErrorMessage())


def main():
    ap = argparse.ArgumentParser(description="Scrapy peer of weft-bench crawl")
    ap.add_argument("--concurrency", type=int, default=256)
    ap.add_argument("--timeout-ms", type=int, default=1000)
    ap.add_argument("--log")
    ap.add_argument("port", type=int)
    a = ap.parse_args()
    if a.concurrency < 1 or a.timeout_ms < 1 or not 0 < a.port < 65536:
        ap.error("out of range")
    log = open(a.log, "w") if a.log else None
    process = CrawlerProcess(settings={
        "CONCURRENT_REQUESTS": a.concurrency,
        "CONCURRENT_REQUESTS_PER_DOMAIN": a.concurrency,
        "CONCURRENT_REQUESTS_PER_IP": 0,
        "DOWNLOAD_TIMEOUT": a.timeout_ms / 1000.0,
        "DOWNLOAD_MAXSIZE": 8 << 20,  # weft's crawler's max_body
        "DOWNLOAD_DELAY": 0,
        "RETRY_ENABLED": False,
        "REDIRECT_ENABLED": False,
        "HTTPERROR_ALLOW_ALL": True,  # every status reaches parse()
        "ROBOTSTXT_OBEY": False,
        "COOKIES_ENABLED": False,
        "COMPRESSION_ENABLED": False,
        "AUTOTHROTTLE_ENABLED": False,
        "TELNETCONSOLE_ENABLED": False,
        "LOG_LEVEL": "ERROR",
        "DEFAULT_REQUEST_HEADERS": {"Accept": "text/html, */*;q=0.5"},
        "REQUEST_FINGERPRINTER_IMPLEMENTATION": "2.7",
    })
    crawler = process.create_crawler(SiteSpider)
    process.crawl(crawler, port=a.port, log=log)
    process.start()
    spider = crawler.spider
    if log:
        log.close()
    if spider.t1 is None:
        spider.idle()
    pages, errors, timeouts = spider.pages, spider.errors, spider.timeouts
    if pages == 0 or errors != timeouts:
        sys.stderr.write("crawl_scrapy: %d pages, %d errors of which %d timeouts "
                         "(is the site running on port %d?) %s\n"
                         % (pages, errors, timeouts, a.port, spider.first_error or ""))
        return 1
    wall = spider.t1 - spider.t0
    cpu = spider.cpu1 - spider.cpu0
    print("RESULT crawl scrapy 1 pages_per_s=%.0f cpu_us_per_page=%.1f "
          "peak_rss_kb=%d pages=%d errors=%d timeouts=%d wall_ms=%d"
          % (pages / wall, cpu / pages,
             resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
             pages, errors, timeouts, wall * 1000))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
