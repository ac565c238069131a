package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/auths-dev/auths-agent/agent/audit"
)

func auditCommand(env *cliEnv) *cli.Command {
	return &cli.Command{
		Name:  "audit",
		Usage: "show or verify the agent's audit trail of signatures and refusals",
		Description: "Prints the audit trail's JSON lines (one per signature, per refused\n" +
			"request, and per signature that failed after it was recorded), those at or\n" +
			"after --since when given. --verify checks the whole hash chain instead and\n" +
			"prints the number of lines and the hash of the last one; a broken chain\n" +
			"exits 1 naming the first bad line. The file is\n" +
			"$XDG_STATE_HOME/auths-agent/audit.jsonl unless --file names another.\n" +
			"TIME is RFC 3339 (2026-12-01T12:00:00Z), a date (2026-12-01, UTC) or a\n" +
			"duration back from now (24h).",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "file", Usage: "the audit trail to read", TakesFile: true},
			&cli.StringFlag{Name: "since", Usage: "show entries at or after `TIME`"},
			&cli.BoolFlag{Name: "verify", Usage: "check the hash chain of the whole file"},
		},
		Action: func(c *cli.Context) error {
			if err := wantArgs(c); err != nil {
				return err
			}
			if c.IsSet("since") && c.Bool("verify") {
				return usageErr("audit: --since and --verify do not go together (--verify checks the whole file)")
			}
			var since time.Time
			if c.IsSet("since") {
				t, err := parseSince(c.String("since"), time.Now())
				if err != nil {
					return usageErr("audit: --since: %v", err)
				}
				since = t
			}
			path := c.String("file")
			if path == "" {
				p, err := audit.DefaultPath(env.getenv)
				if err != nil {
					return usageErr("audit: %v", err)
				}
				path = p
			}
			f, err := os.Open(path)
			if err != nil {
				return usageErr("audit: cannot read %s: %v", shownName(path), unwrapPathErr(err))
			}
			defer f.Close()
			if c.Bool("verify") {
				head, err := audit.Verify(f, nil)
				if err != nil {
					return auditErr(path, err)
				}
				fmt.Fprintf(env.stdout, "%d lines verified, head %s\n", head.Lines, head.Hash)
				return nil
			}
			err = audit.Scan(f, func(line []byte, e audit.Entry) error {
				if e.Time.Before(since) {
					return nil
				}
				_, err := fmt.Fprintf(env.stdout, "%s\n", line)
				return err
			})
			if err != nil {
				return auditErr(path, err)
			}
			return nil
		},
	}
}

// auditErr: a damaged trail is a negative answer (exit 1) naming the line;
// a file that cannot be read is exit 2.
func auditErr(path string, err error) error {
	var bad *audit.BadLineError
	if errors.As(err, &bad) {
		return negativeErr("audit: %s %v", shownName(path), bad)
	}
	return usageErr("audit: cannot read %s: %v", shownName(path), unwrapPathErr(err))
}

// parseSince reads an RFC 3339 time, a date (midnight UTC) or a duration
// before now.
func parseSince(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 && !strings.HasPrefix(s, "-") {
		return now.Add(-d), nil
	}
	return time.Time{}, errors.New("want an RFC 3339 time, a date (YYYY-MM-DD) or a duration such as 24h")
}
