package main

// This file holds `auths-agent serve` (the daemon) and `auths-agent env`
// (the shell lines that point clients at it). The daemon's work is in
// packages agent and socket; this file only wires flags to them.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/auths-dev/auths-agent/agent"
	"github.com/auths-dev/auths-agent/agent/audit"
	"github.com/auths-dev/auths-agent/agent/pinentry"
	"github.com/auths-dev/auths-agent/agent/pins"
	"github.com/auths-dev/auths-agent/agent/touch"
	"github.com/auths-dev/auths-agent/registry"
	"github.com/auths-dev/auths-agent/socket"
)

func serveCommand(env *cliEnv) *cli.Command {
	return &cli.Command{
		Name:  "serve",
		Usage: "run the agent: hold the tokens and answer ssh-agent and auths clients on a unix socket",
		Description: "The socket is --socket, else $AUTHS_AGENT_SOCK, else\n" +
			"$XDG_RUNTIME_DIR/auths-agent/agent.sock, else ~/.auths-agent/agent.sock.\n" +
			"Prints `listening on PATH` when ready; SIGTERM or SIGINT stop it after the\n" +
			"requests in flight. --key adds a controller key (KERI events of identities\n" +
			"whose key list holds it), --ssh-key an SSH key; --config FILE (JSON, see\n" +
			"docs/PROTOCOL.md) gives keys with finer policy. A key whose URI names no PIN\n" +
			"source is unlocked through $PINENTRY_PROGRAM (default pinentry); typed PINs\n" +
			"are kept --pin-cache long, or until ssh-add -x locks the agent or SIGHUP.\n" +
			"Every signature and refusal is appended to the audit trail first; when it\n" +
			"cannot be written, nothing is signed. Under systemd socket activation the\n" +
			"socket systemd passes is served instead of --socket. A card that waits for a\n" +
			"touch is announced in the log, by notify-send and to the client that asked;\n" +
			"a touch that does not come within --touch-timeout fails the request, and the\n" +
			"card answers others with \"busy\" until it is touched or gives up.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "socket", Usage: "the socket `PATH`"},
			&cli.StringFlag{Name: "registry", Usage: "the registry's git repository `DIR`"},
			&cli.StringFlag{Name: "config", Usage: "a config `FILE` (JSON: registry, keys with uses and identities)"},
			newListFlag("key", "a controller key's `URI` (pkcs11: or piv:); repeat"),
			newListFlag("ssh-key", "an SSH key's `URI`; repeat"),
			&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error"},
			&cli.StringFlag{Name: "audit-file", Usage: "the audit trail `FILE` (default $XDG_STATE_HOME/auths-agent/audit.jsonl)", TakesFile: true},
			&cli.DurationFlag{Name: "pin-cache", Usage: "keep a typed PIN this long (0: until lock or SIGHUP)"},
			&cli.DurationFlag{Name: "touch-timeout", Value: agent.DefaultTouchTimeout, Usage: "give up on a touch that does not come within this `DURATION` (the card stays busy until touched or it gives up); overrides the config's touch_timeout"},
		},
		Action: func(c *cli.Context) error { return serveRun(c, env) },
	}
}

func serveRun(c *cli.Context, env *cliEnv) error {
	if err := wantArgs(c); err != nil {
		return err
	}
	cmd := commandPath(c)
	var cfg agent.Config
	if f := c.String("config"); f != "" {
		var err error
		if cfg, err = agent.LoadConfig(f); err != nil {
			return usageErr("%s: %s", cmd, oneLine(err.Error()))
		}
	}
	for _, u := range listValues(c, "key") {
		cfg.Keys = append(cfg.Keys, agent.KeySpec{URI: u, Uses: []agent.Use{agent.UseKERI}})
	}
	for _, u := range listValues(c, "ssh-key") {
		cfg.Keys = append(cfg.Keys, agent.KeySpec{URI: u, Uses: []agent.Use{agent.UseSSH}})
	}
	if r := c.String("registry"); r != "" {
		cfg.Registry = r
	}
	if err := cfg.Check(); err != nil {
		return usageErr("%s: %s", cmd, oneLine(err.Error()))
	}
	// --touch-timeout, else the config's touch_timeout, else the default.
	touchTimeout := c.Duration("touch-timeout")
	if !c.IsSet("touch-timeout") && cfg.TouchWait() > 0 {
		touchTimeout = cfg.TouchWait()
	}
	if touchTimeout <= 0 {
		return usageErr("%s: --touch-timeout %v: want a positive duration", cmd, touchTimeout)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.String("log-level"))); err != nil {
		return usageErr("%s: --log-level %q: want debug, info, warn or error", cmd, c.String("log-level"))
	}
	logger := slog.New(slog.NewTextHandler(env.stderr, &slog.HandlerOptions{Level: level}))
	// x/crypto/ssh/agent logs refused requests with the standard logger;
	// the server logs them itself, with the peer.
	log.SetOutput(io.Discard)
	var reg *registry.Registry
	if cfg.Registry != "" {
		var err error
		if reg, err = registry.Open(cfg.Registry); err != nil {
			return usageErr("%s: %s", cmd, oneLine(err.Error()))
		}
	}
	path := c.String("socket")
	if path == "" {
		var err error
		if path, err = socket.DefaultPath(env.getenv); err != nil {
			return usageErr("%s: %v", cmd, err)
		}
	}
	auditPath := c.String("audit-file")
	if auditPath == "" {
		var err error
		if auditPath, err = audit.DefaultPath(env.getenv); err != nil {
			return usageErr("%s: %v", cmd, err)
		}
	}
	trail, err := audit.Open(auditPath)
	if err != nil {
		return usageErr("%s: %s", cmd, oneLine(err.Error()))
	}
	defer trail.Close()
	prompter := &pinentry.Prompter{Getenv: env.getenv, Logger: logger}
	pinCache, err := pins.New(pins.Options{Ask: prompter.GetPIN, TTL: c.Duration("pin-cache")})
	if err != nil {
		return err
	}
	// Touch notices go to the log, the desktop and the client that asked.
	notices := socket.NewNotices()
	notifier := touch.New(touch.Options{Logger: logger, Forward: func(ctx context.Context, n touch.Notice) {
		notices.Post(ctx, n.String())
	}})
	defer notifier.Wait()
	opener := agent.NewTokenOpener(agent.TokenOptions{
		Getenv: env.getenv,
		Logger: logger,
		Prompt: pinCache.Prompt,
		Touch:  notifier.Notify,
	})
	defer opener.Close()
	a, err := agent.New(cfg, agent.Options{Opener: opener, Registry: reg, RegistryDir: cfg.Registry, Logger: logger,
		Audit: auditSink{trail}, PINRefused: pinCache.Reject, RemoteAuth: remoteAuthFromEnv(env), TouchTimeout: touchTimeout})
	if err != nil {
		return usageErr("%s: %s", cmd, oneLine(err.Error()))
	}
	defer a.Close()
	var ul *net.UnixListener
	activated, err := systemdListener()
	if err != nil {
		return usageErr("%s: %v", cmd, err)
	}
	if activated != nil {
		ul = activated.(*net.UnixListener)
		path = ul.Addr().String()
		defer ul.Close()
	} else {
		ln, err := socket.Listen(path)
		if err != nil {
			if errors.Is(err, socket.ErrAgentRunning) {
				return negativeErr("%s: %s", cmd, oneLine(err.Error()))
			}
			return usageErr("%s: %s", cmd, oneLine(err.Error()))
		}
		defer ln.Close()
		ul, path = ln.UnixListener, ln.Path
	}
	ctx, stop := signal.NotifyContext(c.Context, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	// SIGHUP (systemctl --user reload) forgets every typed PIN.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-hup:
				pinCache.Forget()
				a.DropSessions()
				logger.Info("SIGHUP: PINs forgotten, token sessions closed")
			case <-ctx.Done():
				return
			}
		}
	}()
	srv := socket.NewServer(a, socket.Options{Logger: logger, UID: -1, Lock: locker{pinCache, a}, Notices: notices})
	fmt.Fprintf(env.stdout, "listening on %s\n", path)
	logger.Info("serving", "socket", path, "keys", len(cfg.Keys), "registry", cfg.Registry, "audit", auditPath, "socket_activation", activated != nil)
	if err := srv.Serve(ctx, ul); err != nil {
		return negativeErr("%s: %s", cmd, oneLine(err.Error()))
	}
	logger.Info("stopped", "socket", path)
	return nil
}

func envCommand(env *cliEnv) *cli.Command {
	return &cli.Command{
		Name:  "env",
		Usage: "print the shell lines that point clients at the agent's socket",
		Description: "Prints `export AUTHS_AGENT_SOCK=PATH` (and with --ssh, `export SSH_AUTH_SOCK=PATH`)\n" +
			"for the socket `serve` uses with the same environment: eval \"$(auths-agent env --ssh)\".",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "socket", Usage: "the socket `PATH`"},
			&cli.BoolFlag{Name: "ssh", Usage: "also set SSH_AUTH_SOCK"},
		},
		Action: func(c *cli.Context) error {
			if err := wantArgs(c); err != nil {
				return err
			}
			path := c.String("socket")
			if path == "" {
				var err error
				if path, err = socket.DefaultPath(env.getenv); err != nil {
					return usageErr("%s: %v", commandPath(c), err)
				}
			}
			fmt.Fprintf(env.stdout, "export AUTHS_AGENT_SOCK=%s\n", shellQuote(path))
			if c.Bool("ssh") {
				fmt.Fprintf(env.stdout, "export SSH_AUTH_SOCK=%s\n", shellQuote(path))
			}
			return nil
		},
	}
}

// shellQuote quotes s for a POSIX shell when it needs quoting.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-+:@%,=") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
