package main

import "github.com/urfave/cli/v2"

func kelCommand(env *cliEnv) *cli.Command {
	return &cli.Command{
		Name:  "kel",
		Usage: "work with key event logs",
	}
}
