package main

import "github.com/asynkron/protoactor-go/actor"

// process is a process without a mailbox: protoactor hands it each user
// message on the sender's goroutine, and it passes the message to receive.
// The suite's stand-ins for callers and buckets are all one of these, so
// that no mailbox of theirs adds to what is measured.
type process struct {
	receive func(msg any)
}

var _ actor.Process = (*process)(nil)

// spawnProcess registers a process named after name that passes each user
// message to receive, and returns its PID; remove it from
// sys.ProcessRegistry when done.
func spawnProcess(sys *actor.ActorSystem, name string, receive func(msg any)) *actor.PID {
	pid, _ := sys.ProcessRegistry.Add(&process{receive}, name+"-"+sys.ProcessRegistry.NextId())

	return pid
}

// SendUserMessage implements actor.Process.
func (p *process) SendUserMessage(_ *actor.PID, message any) {
	_, msg, _ := actor.UnwrapEnvelope(message)
	p.receive(msg)
}

// SendSystemMessage implements actor.Process; a process watches nothing.
func (p *process) SendSystemMessage(*actor.PID, any) {}

// Stop implements actor.Process.
func (p *process) Stop(*actor.PID) {}
