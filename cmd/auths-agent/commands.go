package main

import "github.com/urfave/cli/v2"

// commands lists the command groups. Each group lives in its own file.
func commands(env *cliEnv) []*cli.Command {
	return []*cli.Command{
		registryCommand(env),
		kelCommand(env),
		keyCommand(env),
		pivCommand(env),
		idCommand(env),
		anchorCommand(env),
		pendingCommand(env),
		serveCommand(env),
		envCommand(env),
		agentCommand(env),
		auditCommand(env),
		installUnitsCommand(env),
	}
}
