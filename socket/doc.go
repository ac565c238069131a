// Package socket serves an [agent.Agent] on a unix socket with the
// ssh-agent protocol (golang.org/x/crypto/ssh/agent) plus the auths
// extensions, and holds the Go client of those extensions.
//
// # Server
//
// [Listen] prepares the socket: it creates the socket's directory 0700 when
// it does not exist (and never changes the mode of one it did not create),
// refuses to start when another agent answers on the path, replaces the
// socket file of a dead agent, and makes the socket 0600. [Server.Serve]
// checks every connection's peer uid with SO_PEERCRED against the agent's
// own: another uid gets a failure for each request, even when the socket was
// made world-writable. Each connection is served by agent.ServeAgent; frames
// over 16 MiB, truncated frames and garbage (unknown message types, bodies
// that do not parse) close that connection only. When its context ends the
// server stops accepting, lets requests in flight finish and answer, then
// closes every connection.
//
// # Extensions
//
// Extensions named NAME@auths.dev take and return JSON (docs/PROTOCOL.md).
// They dispatch from a table keyed by name. A success is SSH_AGENT_SUCCESS
// followed by the JSON reply; a refusal is SSH_AGENT_EXTENSION_FAILURE
// followed by {"error": ..., "reason": ...}, which plain ssh-agent clients
// read as a bare extension failure. The standard "query" extension lists
// the extensions. notices-to@auths.dev and notices@auths.dev carry the
// notices of a waiting request (a card waiting for a touch) to its client
// on a second connection (notices.go). OpenSSH's session-bind@openssh.com
// binds a connection to an SSH session and its server host key, which the
// audit record of a user-authentication signature then names
// (sessionbind.go).
//
// # Client
//
// [Dial] returns a [*Client]: an ssh-agent client (agent.ExtendedAgent)
// plus typed methods for the auths extensions; [Client.OnNotice] collects
// the notices of its calls.
package socket
