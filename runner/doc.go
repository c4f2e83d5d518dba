// Package runner runs stages on remote machines ("runners"), one fresh
// machine per stage, exchanging everything through the shared S3 cache so
// that the runner only ever makes outbound connections (a coordinator on a
// laptop behind NAT works).
//
// The coordinator side is Executor (a sched.Executor): it uploads the job's
// missing inputs to the CAS, writes the job under runs/<run>/<job>/ in the
// bucket, asks a Provider for a machine whose user-data (Bootstrap) fetches
// the mc binary by digest through a presigned URL, arms a hard power-off at
// the TTL and starts `mc agent`; then it polls the job's objects: heartbeat
// (the lease), log chunks (streamed to the terminal) and finally the result.
//
// Layout under the cache prefix (blobs stay in the normal cas/ space):
//
//	runs/<run>/coordinator          the coordinator's own heartbeat (host, pid, time)
//	runs/<run>/done                 written when the run is over
//	runs/<run>/<job>/job            JobSpec (JSON): the sched.Job minus Log and Secrets
//	runs/<run>/<job>/secrets        secret values sealed to the agent's public key
//	                                (sealed.go); read once and deleted by the agent
//	runs/<run>/<job>/heartbeat      rewritten by the agent every few seconds; it
//	                                carries the agent's public key
//	runs/<run>/<job>/log/<seq>      chunks of the (masked) log, about one per second
//	runs/<run>/<job>/result         ResultSpec (JSON)
//
// An untrusted build's runs live under untrusted/runs/ instead, next to the
// untrusted tier's own cas/ and ac/ (tier.go); its runners write nowhere else.
//
// Providers: "local" (agent processes on this machine, the same protocol
// and bootstrap; what the tests use) and "ec2" (aws-sdk-go-v2). Reap finds
// and terminates the instances of a workspace whose run is over or whose
// mc:expires-at has passed.
package runner
