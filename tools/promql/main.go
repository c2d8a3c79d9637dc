// Command promql parses PromQL expressions with Prometheus's own parser and names the metrics
// that each one selects. The tests use it to check the chart's alerting rules and dashboard.
//
//	echo '["sum(up) < 1", "rate(x_total[5m])"]' | promql
//	[{"metrics":["up"]},{"metrics":["x_total"]}]
//
// Each result has "error" instead when its expression does not parse. Exits 0 unless the input
// is not a JSON list of strings.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"

	"github.com/prometheus/prometheus/promql/parser"
)

type result struct {
	Metrics []string `json:"metrics,omitempty"`
	Error   string   `json:"error,omitempty"`
}

func main() {
	var expressions []string
	if err := json.NewDecoder(os.Stdin).Decode(&expressions); err != nil {
		fmt.Fprintln(os.Stderr, "promql: input must be a JSON list of strings:", err)
		os.Exit(2)
	}
	p := parser.NewParser(parser.Options{})
	results := make([]result, 0, len(expressions))
	for _, expression := range expressions {
		expr, err := p.ParseExpr(expression)
		if err != nil {
			results = append(results, result{Error: err.Error()})
			continue
		}
		names := map[string]bool{}
		parser.Inspect(expr, func(node parser.Node, _ []parser.Node) error {
			if selector, ok := node.(*parser.VectorSelector); ok {
				names[selector.Name] = true
			}
			return nil
		})
		metrics := make([]string, 0, len(names))
		for name := range names {
			metrics = append(metrics, name)
		}
		sort.Strings(metrics)
		results = append(results, result{Metrics: metrics})
	}
	if err := json.NewEncoder(os.Stdout).Encode(results); err != nil {
		os.Exit(1)
	}
}
