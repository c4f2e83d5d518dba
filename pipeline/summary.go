package pipeline

// PrintSummary prints what Build prints after a build: the tests' results
// (test), the tally and critical path, and the failures with their logs.
// A long-running caller (mc watch) prints it after each of its Runs.
func PrintSummary(env Env, command string, res *Result, test bool) {
	printSummary(env, command, res.Actions, res.Report, test, res.Logs)
}
