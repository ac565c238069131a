package socket_test

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/auths-dev/auths-agent/socket"
)

// A client asks the agent to sign an event it staged; a refusal says why.
func ExampleClient_SignEvent() {
	ctx := context.Background()
	c, err := socket.Dial(ctx, os.Getenv("AUTHS_AGENT_SOCK"))
	if err != nil {
		fmt.Println("no agent:", err)
		return
	}
	defer c.Close()
	event := []byte(`{"v":"KERI10JSON…","t":"ixn",…}`) // the exact bytes of the event
	r, err := c.SignEvent(ctx, event)
	var refused *socket.ExtensionError
	switch {
	case errors.As(err, &refused):
		fmt.Println("refused:", refused.Reason, refused.Failure.Error)
	case err != nil:
		fmt.Println(err)
	default:
		fmt.Println(r.SAID, r.Group) // append r.Group after the event bytes
	}
}

// A client lists the agent's keys and anchors a seal (the digest of some
// data of its own) for a 2-of-2 identity whose two keys the agent holds:
// the agent signs with both tokens and commits the interaction event.
func ExampleClient_Anchor() {
	prefix, seal, stop := exampleAgent() // a running agent, at $AUTHS_AGENT_SOCK
	defer stop()

	ctx := context.Background()
	c, err := socket.Dial(ctx, os.Getenv("AUTHS_AGENT_SOCK"))
	if err != nil {
		fmt.Println("no agent:", err)
		return
	}
	defer c.Close()
	keys, err := c.Keys(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, k := range keys {
		fmt.Println(k.Algorithm, k.Uses, k.Identities[0].Prefix == prefix, k.Identities[0].Index)
	}
	r, err := c.Anchor(ctx, socket.AnchorRequest{Prefix: prefix, Seals: []string{"d=" + seal}})
	var refused *socket.ExtensionError
	switch {
	case errors.As(err, &refused):
		fmt.Println("refused:", refused.Reason, refused.Failure.Error)
	case err != nil:
		fmt.Println(err)
	case r.Committed:
		fmt.Println("committed sn", r.Sn)
	default:
		fmt.Println("pending:", r.Needs) // another signer completes it (pending@auths.dev)
	}
	// Output:
	// ed25519 [keri] true 0
	// ed25519 [keri] true 1
	// committed sn 1
}
