// Command teatree serves many DuckDB models through NATS JetStream. Run
// `teatree --help` for the commands.
package main

import (
	"fmt"
	"os"
)

func main() {
	if err := rootCmd().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "teatree:", err)
		os.Exit(1)
	}
}
