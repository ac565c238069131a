//go:build !linux

package registry

import (
	"os"
	"path/filepath"
)

// syncObjects fsyncs each file written and the directories holding them.
func syncObjects(dir string, files []string) error {
	dirs := map[string]bool{}
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		err = f.Sync()
		f.Close()
		if err != nil {
			return err
		}
		dirs[filepath.Dir(name)] = true
	}
	for d := range dirs {
		syncDir(d)
	}
	return nil
}
