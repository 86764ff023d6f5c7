package main

import (
	"fmt"

	"github.com/igsearch/igsearch/onnx/ort"
)

var versionStage = &stage{
	name:    "version",
	summary: "print the igsearch version and the pinned ONNX Runtime release",
	usage: `igsearch version

Prints the igsearch version and the ONNX Runtime release it is built against.

Example:
  igsearch version
`,
	run: func(args []string) error {
		fs := newFlags("version")
		if err := parseFlags(fs, args); err != nil {
			return err
		}
		fmt.Printf("igsearch %s (ONNX Runtime %s)\n", version, ort.Version)
		return nil
	},
}

// version is set at link time by the Makefile when building a release.
var version = "dev"
