// Package printer prints a command's result in the machine-readable formats
// chosen with -o/--output. A command prints its own human form when -o is
// not given; every structured form goes through here so that all commands
// spell and validate the formats the same way.
package printer

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/pflag"
	"sigs.k8s.io/yaml"
)

// Formats accepted by -o/--output.
const (
	JSON = "json"
	YAML = "yaml"
)

// Formats lists every structured format, in the order help texts name them.
var Formats = []string{JSON, YAML}

// Printer writes one result object to w.
type Printer interface {
	Print(w io.Writer, obj any) error
}

// AddFlag registers -o/--output on fs, bound to format.
func AddFlag(fs *pflag.FlagSet, format *string) {
	fs.StringVarP(format, "output", "o", "",
		fmt.Sprintf("Output format. One of: %s. Without it, a short human-readable form.", strings.Join(Formats, ", ")))
}

// New returns the printer for format, or an error that names the valid
// formats. The human form ("") is the command's own and has no printer.
func New(format string) (Printer, error) {
	switch format {
	case JSON:
		return jsonPrinter{}, nil
	case YAML:
		return yamlPrinter{}, nil
	}
	return nil, fmt.Errorf("invalid output format %q: use one of: %s", format, strings.Join(Formats, ", "))
}

type jsonPrinter struct{}

func (jsonPrinter) Print(w io.Writer, obj any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(obj)
}

type yamlPrinter struct{}

func (yamlPrinter) Print(w io.Writer, obj any) error {
	b, err := yaml.Marshal(obj)
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}
