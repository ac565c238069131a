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
