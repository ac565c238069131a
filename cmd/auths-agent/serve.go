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
	"os/signal"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/auths-dev/auths-agent/agent"
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
			"docs/PROTOCOL.md) gives keys with finer policy.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "socket", Usage: "the socket `PATH`"},
			&cli.StringFlag{Name: "registry", Usage: "the registry's git repository `DIR`"},
			&cli.StringFlag{Name: "config", Usage: "a config `FILE` (JSON: registry, keys with uses and identities)"},
			newListFlag("key", "a controller key's `URI` (pkcs11: or piv:); repeat"),
			newListFlag("ssh-key", "an SSH key's `URI`; repeat"),
			&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error"},
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
	opener := agent.NewTokenOpener(agent.TokenOptions{
		Getenv: env.getenv,
		Logger: logger,
		Touch: func(_ context.Context, what string) {
			logger.Warn("touch your YubiKey", "card", what)
		},
	})
	defer opener.Close()
	a, err := agent.New(cfg, agent.Options{Opener: opener, Registry: reg, Logger: logger})
	if err != nil {
		return usageErr("%s: %s", cmd, oneLine(err.Error()))
	}
	defer a.Close()
	ln, err := socket.Listen(path)
	if err != nil {
		if errors.Is(err, socket.ErrAgentRunning) {
			return negativeErr("%s: %s", cmd, oneLine(err.Error()))
		}
		return usageErr("%s: %s", cmd, oneLine(err.Error()))
	}
	defer ln.Close()
	ctx, stop := signal.NotifyContext(c.Context, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	srv := socket.NewServer(a, socket.Options{Logger: logger, UID: -1})
	fmt.Fprintf(env.stdout, "listening on %s\n", ln.Path)
	logger.Info("serving", "socket", ln.Path, "keys", len(cfg.Keys), "registry", cfg.Registry)
	if err := srv.Serve(ctx, ln.UnixListener); err != nil {
		return negativeErr("%s: %s", cmd, oneLine(err.Error()))
	}
	logger.Info("stopped", "socket", ln.Path)
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
