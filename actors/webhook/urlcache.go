package webhook

import (
	"net/url"
	"strings"
	"sync"
)

// Endpoint URLs, parsed once.
//
// Every attempt posts to its bridge's URL, and a node's bridges have few
// URLs each, so parsing the URL again for every request is work done
// again. urlCache keeps the parsed URLs of up to maxCachedURLs endpoints
// that passed the check (absolute http or https with a host); when full
// it starts again empty. A URL that fails the check is not kept, and
// fails again each time. Each request gets a copy of the parsed URL, so
// nothing a request or a redirect does changes the cached one.

// maxCachedURLs bounds the parsed URLs a Deliverer keeps.
const maxCachedURLs = 4096

type urlCache struct {
	mu   sync.RWMutex
	urls map[string]*parsedURL
}

type parsedURL struct {
	u    url.URL // copied into each request; its user info may be shared, as a url.Userinfo cannot change
	host string  // u.Host without an empty port, as http.NewRequest sets Request.Host
}

// get returns raw parsed, and whether it is an absolute http or https URL
// with a host.
func (c *urlCache) get(raw string) (*parsedURL, bool) {
	c.mu.RLock()
	p, ok := c.urls[raw]
	c.mu.RUnlock()
	if ok {
		return p, true
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, false
	}
	// http.NewRequest drops an empty port ("host:", "[::1]:") from the
	// host, as RFC 3986 section 6.2.3 has it.
	host := u.Host
	if strings.LastIndex(host, ":") > strings.LastIndex(host, "]") {
		host = strings.TrimSuffix(host, ":")
	}
	u.Host = host
	p = &parsedURL{u: *u, host: host}
	c.mu.Lock()
	if c.urls == nil || len(c.urls) >= maxCachedURLs {
		c.urls = make(map[string]*parsedURL)
	}
	c.urls[raw] = p
	c.mu.Unlock()
	return p, true
}
