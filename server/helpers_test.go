package server

const testSecret = "s3cret-webhook"

// testToken is the test servers' MC_AUTH_TOKEN (at least MinTokenLen long).
const testToken = "test-token-0123456789abcdef"

// fakeMC is a stand-in for the mc binary: the server only runs it and
// reads its JSON event stream, so these tests control the stream (and its
// timing) exactly. The real binary is exercised by cmd/mc's serve tests.
// Per commit C (the checkout's HEAD), in $FAKE_MC_DIR: args-C receives the
// build's arguments, env-C its environment, pwd-C its directory, mcout-C
// and ls-C what mc-out/ and the checkout held when it started; plant-C
// makes it write mc-out/planted-C and an untracked file, output-C
// mc-out/out-C; started-C appears when the build started, and the
// build waits for gate-C if $FAKE_MC_GATE is set; fail-C makes //b:b fail
// (declared at b/BUILD.mc:4:1), evalerr-C makes it an evaluation error.
// With --check it is the deploy preflight: check-args-C receives its
// arguments, and it fails (exit 2) with the lines of nodeploy-C as its
// problems if that file exists; nothingtodeploy-C makes it find nothing to
// deploy. mc query touches query-C; notests-C makes the query's graph have
// no test stage; test4-C makes mc test exit 4 (no test stage), its
// arguments in test4-args-C. With --deploy it is the deploy build:
// deploy-args-C receives its arguments, deploying-C appears as the deploy stage //b:ship starts, it
// waits for deploygate-C if $FAKE_MC_DEPLOY_GATE is set, and appends C to
// the file deploys when it deployed. query.json replaces the query's
// output; evalerrb-C makes the build another error in a BUILD file (exit
// 2, after a line of progress); hold-C makes it wait for release-C once
// //b:b_test started.
const fakeMC = `#!/bin/sh
c=$(git rev-parse HEAD)
d=$FAKE_MC_DIR
if [ "$1" = query ] && [ -e "$FAKE_MC_DIR/query.json" ]; then
  cat "$FAKE_MC_DIR/query.json"
  exit 0
fi
if [ "$1" = query ]; then
touch "$d/query-$c"
if [ -e "$d/notests-$c" ]; then
  echo '[{"label":"//a:a","kind":"stage rule","attrs":{"deps":[],"test":false}}]'
  exit 0
fi
cat <<'JSON'
[
{"label":"//a:a","kind":"stage rule","attrs":{"deps":[],"srcs":["//a:a.txt"]}},
{"label":"//a:a.txt","kind":"source file"},
{"label":"//a:a.out","kind":"generated file","generating_rule":"//a:a"},
{"label":"//b:b","kind":"stage rule","attrs":{"deps":["//a:a"],"srcs":["//a:a.out"]}},
{"label":"//b:b_test","kind":"stage rule","attrs":{"deps":["//b:b"],"test":true}}
]
JSON
exit 0
fi
case " $* " in *" --check "*)
  echo "$@" > "$d/check-args-$c"
  if [ -e "$d/nodeploy-$c" ]; then
    echo "mc: preflight: this build cannot run as asked:" >&2
    sed 's/^/  /' "$d/nodeploy-$c" >&2
    exit 2
  fi
  if [ -e "$d/nothingtodeploy-$c" ]; then
    echo "mc: preflight: ready (nothing to deploy or push)" >&2
  else
    echo "mc: preflight: ready (1 deploy stage(s) with their secrets)" >&2
  fi
  exit 0;;
esac
now() { date -u +%Y-%m-%dT%H:%M:%S.%NZ; }
case " $* " in *" --deploy "*)
  echo "$@" > "$d/deploy-args-$c"
  echo "{\"type\":\"build_started\",\"time\":\"$(now)\",\"total\":3}"
  echo "{\"type\":\"stage_cached\",\"time\":\"$(now)\",\"label\":\"//a:a\",\"key\":\"aaaa1111\"}"
  echo "{\"type\":\"stage_cached\",\"time\":\"$(now)\",\"label\":\"//b:b\",\"key\":\"bbbb2222\"}"
  echo "{\"type\":\"stage_started\",\"time\":\"$(now)\",\"label\":\"//b:ship\",\"key\":\"eeee5555\"}"
  touch "$d/deploying-$c"
  if [ -n "$FAKE_MC_DEPLOY_GATE" ]; then
    while [ ! -e "$d/deploygate-$c" ]; do sleep 0.05; done
  fi
  echo "{\"type\":\"log\",\"time\":\"$(now)\",\"label\":\"//b:ship\",\"line\":\"shipping $c\"}"
  echo "$c" >> "$d/deploys"
  echo "{\"type\":\"stage_finished\",\"time\":\"$(now)\",\"label\":\"//b:ship\",\"key\":\"eeee5555\",\"duration_ms\":10}"
  echo "{\"type\":\"build_finished\",\"time\":\"$(now)\",\"duration_ms\":20,\"summary\":{\"built\":1,\"cached\":2,\"failed\":0,\"skipped\":0,\"critical_path\":[\"//b:ship\"],\"critical_path_ms\":10}}"
  exit 0;;
esac
if [ "$1" = test ] && [ -e "$d/test4-$c" ]; then
  echo "$@" > "$d/test4-args-$c"
  echo "mc: no test targets match //..." >&2
  exit 4
fi
echo "$@" > "$d/args-$c"
env > "$d/env-$c"
if [ -e "$d/evalerr-$c" ]; then
  echo "a/BUILD.mc:2:27: unknown binary op: int + string" >&2
  echo "  a/BUILD.mc:1:1" >&2
  exit 2
fi
if [ -e "$d/evalerrb-$c" ]; then
  echo "mc: evaluating" >&2
  echo "b/BUILD.mc:3:7: stage: undefined: frob" >&2
  exit 2
fi
pwd > "$d/pwd-$c"
ls -A mc-out > "$d/mcout-$c" 2>/dev/null
ls -A > "$d/ls-$c"
if [ -e "$d/plant-$c" ]; then
  mkdir -p mc-out && echo evil > "mc-out/planted-$c" && echo evil > planted-untracked
fi
if [ -e "$d/output-$c" ]; then
  mkdir -p mc-out && echo out > "mc-out/out-$c"
fi
trap 'echo "{\"type\":\"stage_failed\",\"time\":\"$(now)\",\"label\":\"//b:b\",\"error\":\"interrupted\"}"; echo "{\"type\":\"build_finished\",\"time\":\"$(now)\",\"summary\":{\"built\":0,\"cached\":1,\"failed\":1,\"skipped\":0,\"critical_path_ms\":0}}"; exit 130' INT
echo "{\"type\":\"build_started\",\"time\":\"$(now)\",\"total\":3}"
echo "{\"type\":\"stage_cached\",\"time\":\"$(now)\",\"label\":\"//a:a\",\"key\":\"aaaa1111\"}"
echo "{\"type\":\"stage_started\",\"time\":\"$(now)\",\"label\":\"//b:b\",\"key\":\"bbbb2222\"}"
echo "{\"type\":\"log\",\"time\":\"$(now)\",\"label\":\"//b:b\",\"line\":\"\\u001b[32mcompiling\\u001b[0m <b> & more\"}"
touch "$d/started-$c"
if [ -n "$FAKE_MC_GATE" ]; then
  while [ ! -e "$d/gate-$c" ]; do sleep 0.05; done
fi
echo "{\"type\":\"log\",\"time\":\"$(now)\",\"label\":\"//b:b\",\"line\":\"second line of b\"}"
echo "mc: a line on stderr" >&2
if [ -e "$d/fail-$c" ]; then
  echo "{\"type\":\"stage_failed\",\"time\":\"$(now)\",\"label\":\"//b:b\",\"key\":\"bbbb2222\",\"duration_ms\":120,\"exit_code\":2,\"error\":\"exit status 2\",\"pos\":\"b/BUILD.mc:4:1\"}"
  echo "{\"type\":\"stage_skipped\",\"time\":\"$(now)\",\"label\":\"//b:b_test\",\"reason\":\"a dependency failed\"}"
  echo "{\"type\":\"build_finished\",\"time\":\"$(now)\",\"duration_ms\":300,\"summary\":{\"built\":0,\"cached\":1,\"failed\":1,\"skipped\":1,\"critical_path_ms\":120}}"
  exit 1
fi
echo "{\"type\":\"stage_finished\",\"time\":\"$(now)\",\"label\":\"//b:b\",\"key\":\"bbbb2222\",\"duration_ms\":120,\"outputs\":[{\"path\":\"b/b.out\",\"digest\":\"cccc3333\",\"size\":12}]}"
echo "{\"type\":\"stage_started\",\"time\":\"$(now)\",\"label\":\"//b:b_test\",\"key\":\"dddd4444\"}"
echo "{\"type\":\"log\",\"time\":\"$(now)\",\"label\":\"//b:b_test\",\"line\":\"PASS\"}"
if [ -e "$d/hold-$c" ]; then
  while [ ! -e "$d/release-$c" ]; do sleep 0.05; done
fi
echo "{\"type\":\"stage_finished\",\"time\":\"$(now)\",\"label\":\"//b:b_test\",\"key\":\"dddd4444\",\"duration_ms\":30}"
echo "{\"type\":\"stage_explained\",\"time\":\"$(now)\",\"label\":\"//b:b\",\"key\":\"bbbb2222\",\"reason\":\"input a/a.out changed\"}"
echo "{\"type\":\"build_finished\",\"time\":\"$(now)\",\"duration_ms\":300,\"summary\":{\"built\":2,\"cached\":1,\"failed\":0,\"skipped\":0,\"critical_path\":[\"//a:a\",\"//b:b\",\"//b:b_test\"],\"critical_path_ms\":150}}"
`
