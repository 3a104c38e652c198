package serve

import (
	"embed"
	"net/http"
	"path"
)

// static holds the web page at /: its HTML, CSS and JavaScript, served from the binary (no CDN).
//
//go:embed static/index.html static/style.css static/app.js
var static embed.FS

// pageTypes are the content types of the page's files.
var pageTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
}

// pageCSP allows the page its own files, the images it previews (blob:) and its favicon (data:).
const pageCSP = "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; " +
	"connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"

// handlePage serves the web page (GET /) and its files (GET /static/...); other paths get 404.
func (s *Server) handlePage(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Path
	if name == "/" {
		name = "/static/index.html"
	}
	b, err := static.ReadFile(name[1:])
	if err != nil || path.Clean(name) != name {
		writeError(w, http.StatusNotFound, "no page at "+r.URL.Path+": see / for the web page and /v1/predict, "+
			"/v1/model, /healthz, /readyz and /metrics for the API")
		return
	}
	w.Header().Set("Content-Type", pageTypes[path.Ext(name)])
	w.Header().Set("Content-Security-Policy", pageCSP)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-cache")
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(b)
}
