// Package githttp serves git repositories over https for tests: git's own
// `git http-backend` run as CGI (net/http/cgi) behind httptest's TLS
// server, which asks for HTTP basic credentials. Tests of https:// remotes
// (registry, cmd/auths-agent) share it.
package githttp

import (
	"encoding/pem"
	"io"
	"log"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// Server is a running https git server.
type Server struct {
	// URL is https://127.0.0.1:PORT; a repository DIR under the root is
	// URL + "/" + DIR.
	URL string
	// CAPEM is the PEM certificate the client must trust.
	CAPEM []byte
	// Refused counts the requests refused for their credentials.
	Refused atomic.Int64
}

// Start serves the repositories under root to clients that give user and
// password (git-receive-pack included: REMOTE_USER is set for them), until
// the test ends.
func Start(t testing.TB, root, user, password string) *Server {
	t.Helper()
	out, err := exec.Command("git", "--exec-path").Output()
	if err != nil {
		t.Fatalf("git --exec-path: %v", err)
	}
	backend := filepath.Join(strings.TrimSpace(string(out)), "git-http-backend")
	if _, err := os.Stat(backend); err != nil {
		t.Fatalf("git http-backend: %v", err)
	}
	s := &Server{}
	cg := &cgi.Handler{Path: backend, Env: []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1", "REMOTE_USER=" + user,
		"GIT_CONFIG_NOSYSTEM=1", "HOME=" + root}}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		if !ok || u != user || p != password {
			if ok {
				s.Refused.Add(1)
			}
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "credentials refused", http.StatusUnauthorized)
			return
		}
		cg.ServeHTTP(w, r)
	}))
	// A client that does not trust the CA is a test case, not news.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	s.CAPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	return s
}
