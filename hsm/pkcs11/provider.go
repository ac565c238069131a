// Package pkcs11 keeps controller keys on PKCS#11 tokens: SoftHSM in CI,
// network and cloud HSMs, YubiKeys through ykcs11.
//
// # One provider per module and process
//
// A PKCS#11 module is initialized once per process: a second C_Initialize
// fails, one C_Finalize ends every session, and SoftHSM reads SOFTHSM2_CONF
// only then. So main (or TestMain) calls [Open] once per module and passes
// the [Provider] down; opening the same module twice while the first
// provider is open is an error.
//
// # Tokens, sessions, PINs
//
// Tokens are found by label and/or serial from a [hsm.PKCS11URI], never by
// slot number. Each token has a small pool of sessions and is logged in once
// (CKR_USER_ALREADY_LOGGED_IN counts as success). A PIN the token refused is
// never tried again automatically: the same PIN is refused without calling
// C_Login, for as long as the provider lives (see [hsm.RefusedPINs]). A token that disappears makes the
// call fail with [hsm.ErrTokenAbsent] naming it; the next call finds it
// again and logs in anew.
//
// # Keys
//
// [Provider.Signer] returns the key a URI names (object= label, id=) as a
// [*Signer], an [hsm.Signer]. [Provider.Generate] makes Ed25519
// (CKM_EC_EDWARDS_KEY_PAIR_GEN) or P-256 keys on the token: private keys
// are sensitive, not extractable, and stored on the token.
// [Provider.List] lists a token's keys. Keys with CKA_ALWAYS_AUTHENTICATE get
// a context-specific login before each signature.
package pkcs11

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	p11 "github.com/miekg/pkcs11"

	"github.com/auths-dev/auths-agent/hsm"
)

// Options configure a Provider. The zero value works for URIs that carry
// their PIN source.
type Options struct {
	// Getenv reads environment variables for pin-source=env:NAME; nil means
	// os.Getenv.
	Getenv func(string) string
	// Prompt asks for a PIN when a URI names no PIN source; nil means no
	// prompt (hsm.ErrNoPIN).
	Prompt hsm.PINPrompt
	// Logger receives reconnections and other events; nil discards them.
	Logger *slog.Logger
	// SessionsPerToken caps the sessions opened on one token (default 4).
	SessionsPerToken int
	// RefusedPINs remembers the PINs tokens refused, by token label and
	// serial, for as long as it lives (across reconnects and Providers);
	// nil means one of the Provider's own.
	RefusedPINs *hsm.RefusedPINs
}

// Provider is one loaded PKCS#11 module.
type Provider struct {
	module  string // cleaned absolute path, as given
	key     string // module path with symlinks resolved: the registry key
	ctx     *p11.Ctx
	opts    Options
	log     *slog.Logger
	refused *hsm.RefusedPINs

	// life is read-locked by every operation that calls into the module and
	// write-locked by Close, so the module is never finalized under a call.
	life   sync.RWMutex
	closed bool // guarded by life

	mu     sync.Mutex // guards tokens
	tokens map[tokenID]*token
}

// loadedModules is the only process-wide variable of this package: the
// modules that an open Provider has initialized. It exists for one check:
// a second Provider for the same module in one process is refused, because
// the module cannot be initialized twice and finalizing it would end the
// first provider's sessions.
var loadedModules = struct {
	sync.Mutex
	m map[string]bool
}{m: map[string]bool{}}

// Open loads and initializes the PKCS#11 module at modulePath.
func Open(modulePath string, opts Options) (*Provider, error) {
	if modulePath == "" {
		return nil, errors.New("pkcs11: no module path (add module-path=/path/to/module.so to the URI)")
	}
	abs, err := filepath.Abs(modulePath)
	if err != nil {
		return nil, fmt.Errorf("module %s: %w", modulePath, err)
	}
	if err := checkModuleFile(abs); err != nil {
		return nil, err
	}
	key, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return nil, fmt.Errorf("module %s: %w", abs, err)
	}
	loadedModules.Lock()
	defer loadedModules.Unlock()
	if loadedModules.m[key] {
		return nil, fmt.Errorf("module %s: already loaded by another provider in this process (open one provider per module and pass it down)", abs)
	}
	ctx := p11.New(abs)
	if ctx == nil {
		return nil, fmt.Errorf("module %s: not a PKCS#11 module (cannot load it, or it has no C_GetFunctionList)", abs)
	}
	if err := ctx.Initialize(); err != nil {
		ctx.Destroy()
		return nil, fmt.Errorf("module %s: C_Initialize: %w", abs, err)
	}
	loadedModules.m[key] = true
	if opts.SessionsPerToken <= 0 {
		opts.SessionsPerToken = 4
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	refused := opts.RefusedPINs
	if refused == nil {
		refused = hsm.NewRefusedPINs()
	}
	return &Provider{module: abs, key: key, ctx: ctx, opts: opts, log: log, refused: refused, tokens: map[tokenID]*token{}}, nil
}

// checkModuleFile says what is wrong with a module path before dlopen does:
// a missing file or one that is not a shared library.
func checkModuleFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return fmt.Errorf("module %s: %v", path, err)
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.IsDir() {
		return fmt.Errorf("module %s: is a directory, not a PKCS#11 module", path)
	}
	magic := make([]byte, 4)
	if _, err := io.ReadFull(f, magic); err != nil || !isSharedObjectMagic(magic) {
		return fmt.Errorf("module %s: not a PKCS#11 module (not a shared library)", path)
	}
	return nil
}

func isSharedObjectMagic(m []byte) bool {
	return bytes.Equal(m, []byte("\x7fELF")) || // Linux, BSD
		bytes.Equal(m, []byte{0xcf, 0xfa, 0xed, 0xfe}) || // Mach-O 64
		bytes.Equal(m, []byte{0xca, 0xfe, 0xba, 0xbe}) || // Mach-O universal
		bytes.Equal(m[:2], []byte("MZ")) // Windows DLL
}

// ModulePath returns the module's path.
func (p *Provider) ModulePath() string { return p.module }

// Close finalizes the module: every session and signer of this provider
// stops working. Closing twice is harmless.
func (p *Provider) Close() error {
	p.life.Lock()
	defer p.life.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	err := p.ctx.Finalize()
	p.ctx.Destroy()
	loadedModules.Lock()
	delete(loadedModules.m, p.key)
	loadedModules.Unlock()
	if err != nil {
		return fmt.Errorf("module %s: C_Finalize: %w", p.module, err)
	}
	return nil
}

// enter starts an operation that calls into the module; leave ends it.
func (p *Provider) enter() error {
	p.life.RLock()
	if p.closed {
		p.life.RUnlock()
		return fmt.Errorf("module %s: provider closed", p.module)
	}
	return nil
}

func (p *Provider) leave() { p.life.RUnlock() }

// checkURI refuses URIs meant for another module.
func (p *Provider) checkURI(u *hsm.PKCS11URI) error {
	if u.ModulePath == "" || u.ModulePath == p.module {
		return nil
	}
	if k, err := filepath.EvalSymlinks(u.ModulePath); err == nil && k == p.key {
		return nil
	}
	return fmt.Errorf("%w: module-path %s, but this provider loaded %s", hsm.ErrBadURI, u.ModulePath, p.module)
}
