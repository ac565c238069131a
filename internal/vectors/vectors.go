// Package vectors holds the keripy conformance vectors (the ground truth for
// byte compatibility) inside the project, so that the tests of kel, registry
// and the CLI read the same bytes on a fresh clone. keripy/README.md says
// where they come from and what each file is.
//
// Only tests import this package; the files are embedded, so a test binary
// finds them whatever its working directory.
package vectors

import (
	"embed"
	"fmt"
	"os"
	"path/filepath"
)

//go:embed keripy
var files embed.FS

// Names are the vector files, in the order that forms the two-event KEL
// stream (each event's bytes followed by its signature group).
var Names = []string{"rot_remove.icp.json", "rot_remove.icp.att", "rot_remove.rot.json", "rot_remove.rot.att"}

// File returns one vector file's bytes (a fresh copy the caller may change).
func File(name string) ([]byte, error) {
	data, err := files.ReadFile("keripy/" + name)
	if err != nil {
		return nil, fmt.Errorf("keripy vector %s: %w", name, err)
	}
	return data, nil
}

// Stream returns the files of Names back to back: the valid two-event KEL.
func Stream() []byte {
	var out []byte
	for _, n := range Names {
		data, err := File(n)
		if err != nil {
			// The files are embedded at build time; a missing one is a
			// broken build, not an input.
			panic(err)
		}
		out = append(out, data...)
	}
	return out
}

// WriteDir writes every vector file (and the README) into dir, creating it.
func WriteDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	entries, err := files.ReadDir("keripy")
	if err != nil {
		return err
	}
	for _, e := range entries {
		data, err := files.ReadFile("keripy/" + e.Name())
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), data, 0o644); err != nil {
			return err
		}
	}
	return nil
}
