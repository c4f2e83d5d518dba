package server

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mc-build/mc/event"
	"github.com/mc-build/mc/ghapi"
)

// Bounds of a check run's report: the log lines an annotation of a failed
// stage quotes, and the annotations of one run (GitHub shows at most 50
// per request, any number over several; a run with hundreds of failures
// is summarised, not annotated line by line).
const (
	annotationLogLines = 30
	maxRunAnnotations  = 200
)

// checkOutput is the report of finished run r: a summary (counts, cache
// hit rate, critical path, the run page), the failed stages' log tails,
// and annotations: each failed stage at the line of BUILD.mc declaring it,
// with its last log lines, and each evaluation error at its position.
func (s *Server) checkOutput(ctx context.Context, r *Run, title string) (*ghapi.Output, error) {
	stages, err := s.st.stages(ctx, r.ID)
	if err != nil {
		return nil, err
	}
	var sum, text strings.Builder
	fmt.Fprintf(&sum, "**%s**", r.Status)
	if r.Reason != "" {
		fmt.Fprintf(&sum, ": %s", r.Reason)
	}
	fmt.Fprintf(&sum, " · [run %d](%s)\n\n", r.ID, s.runURL(r))
	hit := "–"
	if p := r.CacheHitPercent(); p >= 0 {
		hit = fmt.Sprintf("%d%%", p)
	}
	fmt.Fprintf(&sum, "| built | cached | failed | skipped | cache hit rate | duration |\n|---:|---:|---:|---:|---:|---:|\n")
	fmt.Fprintf(&sum, "| %d | %d | %d | %d | %s | %s |\n", r.Built, r.Cached, r.Failed, r.Skipped, hit, fmtDuration(r.Duration()))
	if len(r.CriticalPath) > 0 {
		fmt.Fprintf(&sum, "\nCritical path (%s): `%s`\n", fmtDuration(msDuration(r.CriticalMS)), strings.Join(r.CriticalPath, "` → `"))
	}
	if r.DeployNote != "" {
		fmt.Fprintf(&sum, "\nDeploy: %s\n", r.DeployNote)
	}

	var anns []ghapi.Annotation
	var failed []string
	for _, st := range stages {
		if st.Status != StageFailed || st.Error == "interrupted" {
			continue
		}
		failed = append(failed, st.Label)
		tail, err := s.st.logTail(ctx, r.ID, st.Label, annotationLogLines)
		if err != nil {
			return nil, err
		}
		what := st.Error
		if st.ExitCode != 0 {
			what = fmt.Sprintf("exit %d", st.ExitCode)
		}
		fmt.Fprintf(&text, "### %s failed (%s)\n\n%s\n", st.Label, what, codeBlock(strings.Join(append(tail, st.Error), "\n")))
		ev, err := s.st.lastStageEvent(ctx, r.ID, st.Label, event.StageFailed)
		if err != nil {
			return nil, err
		}
		file, line, _, ok := parsePos(ev.Pos)
		if !ok {
			continue // no position (an mc without it): the text says it
		}
		msg := strings.Join(tail, "\n")
		if msg == "" {
			msg = st.Error
		} else if st.Error != "" {
			msg += "\n" + st.Error
		}
		anns = append(anns, ghapi.Annotation{Path: file, StartLine: line, EndLine: line, Level: "failure",
			Title: fmt.Sprintf("%s failed (%s)", st.Label, what), Message: msg})
	}
	if len(failed) > 0 {
		fmt.Fprintf(&sum, "\nFailed: `%s`\n", strings.Join(failed, "`, `"))
	}
	evalErrs, err := s.evalErrors(ctx, r.ID)
	if err != nil {
		return nil, err
	}
	for _, a := range evalErrs {
		fmt.Fprintf(&text, "### %s:%d:%d\n\n%s\n", a.Path, a.StartLine, a.StartColumn, codeBlock(a.Message))
	}
	anns = append(anns, evalErrs...)
	if len(anns) > maxRunAnnotations {
		fmt.Fprintf(&sum, "\n%d annotations; the first %d are shown.\n", len(anns), maxRunAnnotations)
		anns = anns[:maxRunAnnotations]
	}
	return &ghapi.Output{Title: title, Summary: sum.String(), Text: text.String(), Annotations: anns}, nil
}

func msDuration(ms int64) time.Duration { return time.Duration(ms) * time.Millisecond }

// codeBlock quotes s as a Markdown code block whose fence is longer than
// any run of backticks in s: a log (a pull request's, say) cannot close
// it and put its own Markdown — links, images — in the check run's page.
func codeBlock(s string) string {
	longest, run := 0, 0
	for _, c := range s {
		if c == '`' {
			run++
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	fence := strings.Repeat("`", max(3, longest+1))
	return fence + "\n" + s + "\n" + fence + "\n"
}

// evalErrorRE is an error of mc evaluating the workspace, as it prints
// them: FILE:LINE:COL: MESSAGE, FILE a .mc or .star file of the workspace.
var evalErrorRE = regexp.MustCompile(`^(?:mc: )?(?:error: )?([^\s:@][^\s:]*\.(?:mc|star)):(\d+):(\d+): (.+)$`)

// evalErrors are the evaluation errors in run id's own log (mc's standard
// error), as annotations at their positions.
func (s *Server) evalErrors(ctx context.Context, id int64) ([]ghapi.Annotation, error) {
	lines, err := s.st.logTail(ctx, id, "", logLimit)
	if err != nil {
		return nil, err
	}
	var out []ghapi.Annotation
	for _, l := range lines {
		m := evalErrorRE.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		file, line, col, ok := parsePos(m[1] + ":" + m[2] + ":" + m[3])
		if !ok {
			continue
		}
		a := ghapi.Annotation{Path: file, StartLine: line, EndLine: line, StartColumn: col, EndColumn: col,
			Level: "failure", Title: "evaluation error", Message: m[4]}
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out, nil
}

// parsePos reads FILE:LINE[:COL] with FILE a clean path relative to the
// repository (what an annotation may name).
func parsePos(p string) (file string, line, col int, ok bool) {
	parts := strings.Split(p, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return "", 0, 0, false
	}
	file = parts[0]
	line, err := strconv.Atoi(parts[1])
	if err != nil || line < 1 || file == "" || path.IsAbs(file) || path.Clean(file) != file || strings.HasPrefix(file, "../") || file == ".." {
		return "", 0, 0, false
	}
	if len(parts) == 3 {
		if col, err = strconv.Atoi(parts[2]); err != nil || col < 0 {
			return "", 0, 0, false
		}
	}
	return file, line, col, true
}

// ansiRE matches the terminal escapes of a log line (annotations are
// plain text).
var ansiRE = regexp.MustCompile("\x1b\\[[0-9;?]*[ -/]*[@-~]")

// logTail returns the last n log lines of label in run id ("" is the
// run's own log), oldest first, without terminal escapes.
func (st *store) logTail(ctx context.Context, id int64, label string, n int) ([]string, error) {
	rows, err := st.db.QueryContext(ctx, `SELECT data FROM events WHERE run = ? AND label = ? AND type = 'log'
		ORDER BY seq DESC LIMIT ?`, id, label, n)
	if err != nil {
		return nil, fmt.Errorf("server: log of run %d: %w", id, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var data string
		if err := rows.Scan(&data); err != nil {
			return nil, err
		}
		var e event.Event
		if json.Unmarshal([]byte(data), &e) == nil {
			out = append(out, ansiRE.ReplaceAllString(e.Line, ""))
		}
	}
	slices.Reverse(out)
	return out, rows.Err()
}

// lastStageEvent returns the last event of type typ of label in run id.
func (st *store) lastStageEvent(ctx context.Context, id int64, label, typ string) (event.Event, error) {
	var data string
	var e event.Event
	err := st.db.QueryRowContext(ctx, `SELECT data FROM events WHERE run = ? AND label = ? AND type = ?
		ORDER BY seq DESC LIMIT 1`, id, label, typ).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return e, nil
	}
	if err != nil {
		return e, fmt.Errorf("server: events of run %d: %w", id, err)
	}
	_ = json.Unmarshal([]byte(data), &e)
	return e, nil
}
