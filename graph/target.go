package graph

import (
	"fmt"
	"time"
)

// Kind is the kind of a target, as `mc query 'kind(...)'` sees it.
type Kind string

const (
	KindStage     Kind = "stage"
	KindImage     Kind = "image"
	KindFilegroup Kind = "filegroup"
	KindSource    Kind = "source file"
)

// Pos is a position in a workspace file. File is relative to the workspace root.
type Pos struct {
	File string
	Line int
	Col  int
}

func (p Pos) String() string {
	if p.Line == 0 {
		return p.File
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
}

// Target is one evaluated rule (stage, image or filegroup). Source files are
// not Targets; they are resolved when the graph is linked.
type Target struct {
	Label Label
	Kind  Kind
	// Pos is where the rule was declared, as the user sees it: the call in the
	// BUILD.mc file (for a macro, the macro call in BUILD.mc).
	Pos Pos
	// Stack is the Starlark call stack of the declaration, outermost first,
	// ending at the stage()/image()/filegroup() call itself. Longer than one
	// entry when a macro declared the target.
	Stack []Pos

	Srcs []Label // stage, filegroup: files, filegroups, stages, outputs
	Deps []Label // stage: stages, images, filegroups whose outputs it needs

	// Stage attributes (SPEC §3).
	Cmds        []string // run in order, stopping at the first failure
	Outs        []string // relative to the package; a trailing "/" marks a directory
	Env         map[string]string
	Secrets     []string
	Tags        []string
	Test        bool
	Deploy      bool
	Cache       bool
	Network     bool
	Timeout     time.Duration // 0: none
	CacheMounts map[string]string
	Machine     map[string]string
	Image       string // label of an image target, or a registry reference; "" for none

	// Image attributes (Kind == KindImage).
	ImageSpec *ImageSpec
}

// ImageSpec holds the attributes of an image() target.
type ImageSpec struct {
	Base       string           // image label or registry reference, "" for scratch
	Files      map[string]Label // destination path in the image -> source/output label
	Entrypoint []string
	Cmd        []string
	Env        map[string]string
	Workdir    string
	Labels     map[string]string
	Repository string
	Tags       []string
}

// Package is the result of evaluating one BUILD.mc file.
type Package struct {
	Name    string    // package path, "" for the root
	File    string    // BUILD.mc path relative to the workspace root
	Targets []*Target // in declaration order
	// Loads lists every .star file (workspace-relative) loaded while
	// evaluating the package, transitively. Used for cache invalidation and
	// by `mc query buildfiles(...)`.
	Loads []string
}

// Workspace holds the settings of WORKSPACE.mc's workspace(...) call (SPEC §1).
type Workspace struct {
	Root     string // absolute path of the directory holding WORKSPACE.mc
	Name     string
	Ignore   []string // workspace-relative paths never globbed or walked
	Cache    string   // "" or "s3://bucket/prefix"
	Registry string
	Runners  *EC2Runners
}

// EC2Runners holds the settings of ec2(...) in WORKSPACE.mc.
type EC2Runners struct {
	Region         string
	Subnet         string
	SecurityGroups []string
	AMI            string
	InstanceType   string
	MaxInstances   int
	// Warm caps the spare runners booting ahead of the stages that will
	// take them; -1 for the default (8×MaxInstances), 0 for none.
	Warm int
	TTL  time.Duration
	// InstanceProfile is the IAM instance profile (name or ARN) whose role
	// gives the agent access to the shared cache; "" for none.
	InstanceProfile string
	// UntrustedInstanceProfile is the instance profile of untrusted builds'
	// runners, whose role writes only the untrusted tier; "" for none (then
	// untrusted builds cannot use runners).
	UntrustedInstanceProfile string
}
