// A Go client for tests/30-tool-launcher.bats: dials argv[1] and writes
// argv[2]. Built there with and without cgo: the launcher must refuse
// both, since Go's runtime makes its own connect and write system calls.
package main

import (
	"fmt"
	"net"
	"os"
)

func main() {
	c, err := net.Dial("tcp", os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Fprintln(c, os.Args[2])
	c.Close()
}
