// Command hutong is the payment interoperability gateway: one binary that serves the merchant
// API, the hosted checkout and the wallet connectors, and, for development, offline sandboxes of
// WeChat Pay and Alipay. This file only wires: flags, configuration, start and stop.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `hutong — one merchant API for WeChat Pay and Alipay

Usage:
  hutong <command> [flags]

Commands:
  demo      gateway + hosted checkout + both wallet sandboxes + example shop, on embedded SQLite
  serve     the gateway alone, configured from a file and the environment
  sandbox   the offline WeChat Pay and Alipay sandboxes alone
  migrate   bring the database schema up to date
  apikey    create, list or revoke merchant API keys
  version   print the version

Run 'hutong <command> --help' for a command's flags.
`

var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv))
}

// run is the whole program, so that tests can run it in-process.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmds := map[string]func(context.Context, []string, io.Writer, io.Writer, func(string) string) error{
		"demo": runDemo, "serve": runServe, "sandbox": runSandbox, "migrate": runMigrate, "apikey": runAPIKey,
	}
	name, rest := args[0], args[1:]
	switch name {
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	case "version", "--version":
		fmt.Fprintln(stdout, "hutong", version)
		return 0
	}
	cmd, ok := cmds[name]
	if !ok {
		fmt.Fprintf(stderr, "hutong: unknown command %q\n\n%s", name, usage)
		return 2
	}
	err := cmd(ctx, rest, stdout, stderr, getenv)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	default:
		fmt.Fprintf(stderr, "hutong %s: %v\n", name, err)
		return 1
	}
}

// errUsage marks a bad command line whose message the flag package already printed.
var errUsage = errors.New("usage")

// newFlags returns a flag set whose --help prints the command's summary first.
func newFlags(name, summary string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("hutong "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "%s\n\nUsage:\n  hutong %s [flags]\n\nFlags:\n", summary, name)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses args, mapping flag errors to errUsage (the flag package has printed them).
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return errUsage
	}
	return nil
}
