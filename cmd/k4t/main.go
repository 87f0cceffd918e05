// Command k4t provisions highly-available Kubernetes clusters over SSH.
package main

import (
	"os"
)

func main() {
	os.Exit(execute())
}
