package main

import "github.com/urfave/cli/v2"

// kelRegistryCommands returns the registry subcommands of `auths-agent kel`
// (kel import, kel show). Placeholder until the registry work fills it in:
// it returns kelImportCommand(env), kelShowCommand(env), and kel verify
// gains its --registry DIR form through verifyRegistry.
func kelRegistryCommands(env *cliEnv) []*cli.Command { return nil }
