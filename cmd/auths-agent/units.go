package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/auths-dev/auths-agent/contrib/systemd"
)

func installUnitsCommand(env *cliEnv) *cli.Command {
	return &cli.Command{
		Name:  "install-units",
		Usage: "write the systemd user units (socket and service) of the agent",
		Description: "Writes auths-agent.socket and auths-agent.service into --dir, by default\n" +
			"$XDG_CONFIG_HOME/systemd/user (~/.config/systemd/user), with ExecStart\n" +
			"naming this auths-agent binary. A unit file that exists with other content\n" +
			"is left alone unless --force. Then: systemctl --user daemon-reload;\n" +
			"systemctl --user enable --now auths-agent.socket.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "dir", Usage: "the `DIR` to write the units into", TakesFile: true},
			&cli.BoolFlag{Name: "force", Usage: "overwrite unit files that differ"},
		},
		Action: func(c *cli.Context) error {
			cmd := commandPath(c)
			if err := wantArgs(c); err != nil {
				return err
			}
			dir := c.String("dir")
			if dir == "" {
				d, err := userUnitDir(env.getenv)
				if err != nil {
					return usageErr("%s: %v", cmd, err)
				}
				dir = d
			}
			exe, err := os.Executable()
			if err != nil {
				return usageErr("%s: cannot find this program's path: %v", cmd, err)
			}
			if exe, err = filepath.EvalSymlinks(exe); err != nil {
				return usageErr("%s: cannot find this program's path: %v", cmd, unwrapPathErr(err))
			}
			if strings.ContainsAny(exe, " \t\n\"'\\%$") {
				return usageErr("%s: this program's path %q needs quoting in a unit file; copy contrib/systemd by hand", cmd, exe)
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return usageErr("%s: %s: %v", cmd, dir, unwrapPathErr(err))
			}
			// Check every file before writing any, so that a refusal
			// leaves no half-installed pair.
			texts := map[string][]byte{}
			for _, name := range systemd.Names {
				data, err := fs.ReadFile(systemd.Units, name)
				if err != nil {
					return err
				}
				data = bytes.ReplaceAll(data, []byte(systemd.ExecPath), []byte(exe))
				texts[name] = data
				old, err := os.ReadFile(filepath.Join(dir, name))
				switch {
				case errors.Is(err, fs.ErrNotExist):
				case err != nil:
					return usageErr("%s: %s: %v", cmd, filepath.Join(dir, name), unwrapPathErr(err))
				case !bytes.Equal(old, data) && !c.Bool("force"):
					return negativeErr("%s: %s exists with other content (--force overwrites it)", cmd, filepath.Join(dir, name))
				}
			}
			for _, name := range systemd.Names {
				path := filepath.Join(dir, name)
				tmp := path + ".tmp"
				if err := os.WriteFile(tmp, texts[name], 0o644); err != nil {
					return usageErr("%s: %s: %v", cmd, tmp, unwrapPathErr(err))
				}
				if err := os.Rename(tmp, path); err != nil {
					os.Remove(tmp)
					return usageErr("%s: %s: %v", cmd, path, unwrapPathErr(err))
				}
				fmt.Fprintf(env.stdout, "wrote %s\n", path)
			}
			return nil
		},
	}
}

// userUnitDir is $XDG_CONFIG_HOME/systemd/user, or ~/.config/systemd/user.
func userUnitDir(getenv func(string) string) (string, error) {
	if d := getenv("XDG_CONFIG_HOME"); filepath.IsAbs(d) {
		return filepath.Join(d, "systemd", "user"), nil
	}
	home := getenv("HOME")
	if !filepath.IsAbs(home) {
		return "", errors.New("neither XDG_CONFIG_HOME nor HOME is an absolute path (use --dir)")
	}
	return filepath.Join(home, ".config", "systemd", "user"), nil
}
