// Command standin is a scripted pinentry for the tests of package pinentry:
// it speaks just enough Assuan, records (appends) the lines it receives, and plays the
// fault named by STANDIN_MODE.
package main

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"time"
)

func main() {
	mode := os.Getenv("STANDIN_MODE")
	var rec *os.File
	if path := os.Getenv("STANDIN_RECORD"); path != "" {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			os.Exit(3)
		}
		defer f.Close()
		rec = f
	}
	switch mode {
	case "die-at-start":
		os.Exit(7)
	case "hang-at-start":
		time.Sleep(time.Hour)
	case "garbage-greeting":
		fmt.Println("HELLO THERE")
		return
	}
	// STANDIN_PINS=a,b,…: the Nth run answers the Nth PIN (runs counted by
	// the GETPINs already in the record file).
	pin := os.Getenv("STANDIN_PIN")
	if list := os.Getenv("STANDIN_PINS"); list != "" {
		before, _ := os.ReadFile(os.Getenv("STANDIN_RECORD"))
		n := strings.Count(string(before), "GETPIN\n")
		pins := strings.Split(list, ",")
		pin = pins[min(n, len(pins)-1)]
	}
	fmt.Println("OK Pleased to meet you")
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		line := in.Text()
		if rec != nil {
			fmt.Fprintln(rec, line)
		}
		cmd, _, _ := strings.Cut(line, " ")
		if cmd != "GETPIN" {
			if cmd == "BYE" {
				fmt.Println("OK closing connection")
				return
			}
			if cmd == "OPTION" && strings.Contains(line, "unknown") {
				fmt.Println("ERR 83886254 Unknown option <Pinentry>")
				continue
			}
			fmt.Println("OK")
			continue
		}
		switch mode {
		case "die":
			os.Exit(9)
		case "hang":
			time.Sleep(time.Hour)
		case "garbage":
			fmt.Println("D 1234")
			fmt.Println("xyzzy secret-looking 1234")
		case "long":
			fmt.Println("D " + strings.Repeat("1", 2000))
		case "badescape":
			fmt.Println("D 12%G4")
		case "cancel":
			fmt.Println("ERR 83886179 Operation cancelled <Pinentry>")
		case "error":
			fmt.Println("ERR 83886081 General error <Pinentry>")
		case "empty":
			fmt.Println("OK")
		default:
			fmt.Println("S PASSWORD_FROMCACHE")
			fmt.Println("# a comment")
			fmt.Println("D " + pin)
			fmt.Println("OK")
		}
	}
}
