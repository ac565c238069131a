// Package systemd holds the systemd user units of auths-agent (the files
// in this directory), embedded so that `auths-agent install-units` can
// write them.
package systemd

import "embed"

// Units are auths-agent.socket and auths-agent.service.
//
//go:embed auths-agent.socket auths-agent.service
var Units embed.FS

// Names lists the unit files, the socket first.
var Names = []string{"auths-agent.socket", "auths-agent.service"}

// ExecPath is the program path the service's ExecStart names; installing
// replaces it by where the binary is.
const ExecPath = "%h/.local/bin/auths-agent"
