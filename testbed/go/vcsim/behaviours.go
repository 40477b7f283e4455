package main

// How our behaviours reach the simulator: Registry.Handler (public API) is asked for every SOAP call and may
// return another object to dispatch the call to. For the methods we change it returns a thin wrapper around the
// registered VirtualMachine, VirtualMachineSnapshot, SessionManager or AuthorizationManager whose same-named Go
// method shadows upstream's. The global registry keeps the original objects (vcsim type-asserts *VirtualMachine in many
// places). But for a logged-in call vcsim then prefers what the session's own registry returns for the moref, so
// the wrapper is also put there, and taken out again as soon as the call reaches the wrapper (otherwise a removed
// snapshot would live on in that session). Wrappers implement Get() so that the PropertyCollector, which reads
// through the session, reads the original meanwhile.

import (
	"context"
	"reflect"
	"sync"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

type behaviours struct {
	reg   *simulator.Registry
	rules ruleSet

	mu  sync.Mutex
	vms map[types.ManagedObjectReference]*vmState // per-VM counters, see vmState
}

func newBehaviours(reg *simulator.Registry) *behaviours {
	return &behaviours{reg: reg, vms: map[types.ManagedObjectReference]*vmState{}}
}

// handler is installed as Registry.Handler.
func (b *behaviours) handler(ctx *simulator.Context, m *simulator.Method) (mo.Reference, types.BaseMethodFault) {
	var w mo.Reference
	switch obj := ctx.Map.Get(m.This).(type) {
	case *simulator.VirtualMachine:
		switch m.Name {
		case "CreateSnapshot_Task", "CreateSnapshotEx_Task", "RevertToCurrentSnapshot_Task",
			"RemoveAllSnapshots_Task", "ReconfigVM_Task", "RefreshStorageInfo":
			w = &vmMethods{obj, b}
		}
	case *simulator.VirtualMachineSnapshot:
		switch m.Name {
		case "RevertToSnapshot_Task", "RemoveSnapshot_Task":
			w = &snapshotMethods{obj, b}
		}
	case *simulator.SessionManager:
		if m.Name == "Logout" {
			w = &sessionMethods{obj}
		}
	case *simulator.AuthorizationManager:
		if m.Name == "HasPrivilegeOnEntities" {
			w = &authzMethods{obj}
		}
	}
	if w != nil && ctx.Session != nil {
		ctx.Session.Put(w)
	}
	return w, nil
}

// unwrap takes the wrapper for ref out of the calling session's registry again (see the top of this file).
func unwrap(ctx *simulator.Context, ref types.ManagedObjectReference) {
	if ctx.Session != nil {
		ctx.Session.Remove(ctx, ref)
	}
}

// context returns a simulator context for work started outside a SOAP call (control API).
func (b *behaviours) context() *simulator.Context {
	return &simulator.Context{Context: context.Background(), Map: b.reg}
}

type vmMethods struct {
	*simulator.VirtualMachine
	b *behaviours
}

func (w *vmMethods) Get() mo.Reference { return w.VirtualMachine }

func (w *vmMethods) CreateSnapshotTask(ctx *simulator.Context, req *types.CreateSnapshot_Task) soap.HasFault {
	unwrap(ctx, w.Self)
	spec := createSpec{name: req.Name, description: req.Description, memory: req.Memory, quiesce: req.Quiesce}
	ref := w.b.runTask(ctx, w.VirtualMachine, "CreateSnapshot_Task", func(c *simulator.Context) (types.AnyType, types.BaseMethodFault) {
		return w.b.createSnapshot(c, w.VirtualMachine, spec)
	})
	return &methods.CreateSnapshot_TaskBody{Res: &types.CreateSnapshot_TaskResponse{Returnval: ref}}
}

func (w *vmMethods) CreateSnapshotExTask(ctx *simulator.Context, req *types.CreateSnapshotEx_Task) soap.HasFault {
	unwrap(ctx, w.Self)
	spec := createSpec{name: req.Name, description: req.Description, memory: req.Memory, quiesce: req.QuiesceSpec != nil}
	ref := w.b.runTask(ctx, w.VirtualMachine, "CreateSnapshotEx_Task", func(c *simulator.Context) (types.AnyType, types.BaseMethodFault) {
		return w.b.createSnapshot(c, w.VirtualMachine, spec)
	})
	return &methods.CreateSnapshotEx_TaskBody{Res: &types.CreateSnapshotEx_TaskResponse{Returnval: ref}}
}

func (w *vmMethods) RevertToCurrentSnapshotTask(ctx *simulator.Context, req *types.RevertToCurrentSnapshot_Task) soap.HasFault {
	unwrap(ctx, w.Self)
	if w.Snapshot == nil || w.Snapshot.CurrentSnapshot == nil { // fails at invocation, as in vcsim
		return &methods.RevertToCurrentSnapshot_TaskBody{Fault_: simulator.Fault("snapshot not found", new(types.NotFound))}
	}
	snap, suppress := *w.Snapshot.CurrentSnapshot, req.SuppressPowerOn != nil && *req.SuppressPowerOn
	ref := w.b.runTask(ctx, w.VirtualMachine, "RevertToCurrentSnapshot_Task", func(c *simulator.Context) (types.AnyType, types.BaseMethodFault) {
		return nil, w.b.revertSnapshot(c, w.VirtualMachine, snap, suppress)
	})
	return &methods.RevertToCurrentSnapshot_TaskBody{Res: &types.RevertToCurrentSnapshot_TaskResponse{Returnval: ref}}
}

func (w *vmMethods) RemoveAllSnapshotsTask(ctx *simulator.Context, req *types.RemoveAllSnapshots_Task) soap.HasFault {
	unwrap(ctx, w.Self)
	ref := w.b.runTask(ctx, w.VirtualMachine, "RemoveAllSnapshots_Task", func(c *simulator.Context) (types.AnyType, types.BaseMethodFault) {
		return nil, w.b.removeAllSnapshots(c, w.VirtualMachine)
	})
	return &methods.RemoveAllSnapshots_TaskBody{Res: &types.RemoveAllSnapshots_TaskResponse{Returnval: ref}}
}

// ReconfigVMTask is upstream's unless a rule names it; then upstream's task runs inside ours once the delay is
// over (it shows up in recentTask as a second, short task).
func (w *vmMethods) ReconfigVMTask(ctx *simulator.Context, req *types.ReconfigVM_Task) soap.HasFault {
	unwrap(ctx, w.Self)
	if !w.b.rules.match("ReconfigVM_Task", w.Self.Value) {
		return w.VirtualMachine.ReconfigVMTask(ctx, req)
	}
	ref := w.b.runTask(ctx, w.VirtualMachine, "ReconfigVM_Task", func(c *simulator.Context) (types.AnyType, types.BaseMethodFault) {
		return waitUpstream(c, w.VirtualMachine.ReconfigVMTask(c, req))
	})
	return &methods.ReconfigVM_TaskBody{Res: &types.ReconfigVM_TaskResponse{Returnval: ref}}
}

// RefreshStorageInfo: upstream rebuilds layoutEx from the datastore directory and renumbers the file keys,
// which would break the snapshot file keys kept by layout.go; our layoutEx is always current already.
func (w *vmMethods) RefreshStorageInfo(ctx *simulator.Context, req *types.RefreshStorageInfo) soap.HasFault {
	unwrap(ctx, w.Self)
	w.b.refreshStorage(ctx, w.VirtualMachine)
	return &methods.RefreshStorageInfoBody{Res: new(types.RefreshStorageInfoResponse)}
}

type snapshotMethods struct {
	*simulator.VirtualMachineSnapshot
	b *behaviours
}

func (w *snapshotMethods) Get() mo.Reference { return w.VirtualMachineSnapshot }

func (w *snapshotMethods) vm(ctx *simulator.Context) *simulator.VirtualMachine {
	return ctx.Map.Get(w.Vm).(*simulator.VirtualMachine)
}

func (w *snapshotMethods) RevertToSnapshotTask(ctx *simulator.Context, req *types.RevertToSnapshot_Task) soap.HasFault {
	unwrap(ctx, w.Self)
	vm, snap := w.vm(ctx), w.Self
	suppress := req.SuppressPowerOn != nil && *req.SuppressPowerOn
	ref := w.b.runTask(ctx, vm, "RevertToSnapshot_Task", func(c *simulator.Context) (types.AnyType, types.BaseMethodFault) {
		return nil, w.b.revertSnapshot(c, vm, snap, suppress)
	})
	return &methods.RevertToSnapshot_TaskBody{Res: &types.RevertToSnapshot_TaskResponse{Returnval: ref}}
}

func (w *snapshotMethods) RemoveSnapshotTask(ctx *simulator.Context, req *types.RemoveSnapshot_Task) soap.HasFault {
	unwrap(ctx, w.Self)
	vm, snap := w.vm(ctx), w.Self
	ref := w.b.runTask(ctx, vm, "RemoveSnapshot_Task", func(c *simulator.Context) (types.AnyType, types.BaseMethodFault) {
		return nil, w.b.removeSnapshot(c, vm, snap, req.RemoveChildren)
	})
	return &methods.RemoveSnapshot_TaskBody{Res: &types.RemoveSnapshot_TaskResponse{Returnval: ref}}
}

type sessionMethods struct {
	*simulator.SessionManager
}

func (w *sessionMethods) Get() mo.Reference { return w.SessionManager }

// Logout is upstream's, but unregisters the session's objects after releasing its registry's mutex.
//
// The simulator's lock order is a VM's lock, then a ContainerView's, then the session registry's mutex:
// registering or unregistering anything (tasks and snapshots, under their VM's lock) runs every ContainerView's
// PutObject or RemoveObject, which lock that view, and a property collector reading through a ContainerView
// holds the view's lock (or a VM's) while it looks objects up in the session registry. Upstream's Logout holds
// that mutex while it unregisters the session's views, filters and collectors, so while it locks every view: a
// Logout racing a read through a view of its own session (a change feed's WaitForUpdatesEx as the worker closes
// the session) deadlocked with it, and then every task (registering one waits for that view, holding the VM's
// lock) and every read of those VMs. So upstream's Logout only ends the session and posts the event here, given a
// registry of its own that holds nothing.
func (w *sessionMethods) Logout(ctx *simulator.Context, req *types.Logout) soap.HasFault {
	unwrap(ctx, w.Self)
	s := ctx.Session
	alone := *ctx
	alone.Session = &simulator.Session{UserSession: s.UserSession, Registry: simulator.NewRegistry(), Map: s.Map}
	res := w.SessionManager.Logout(&alone, req)
	for _, obj := range s.AllReference("") { // a copy
		if _, pc := obj.(*compatPC); pc {
			continue // the session's instance of the PropertyCollector singleton: upstream keeps it too
		}
		if _, ok := obj.(simulator.RegisterObject); ok {
			ctx.Map.Remove(ctx, obj.Reference())
		}
	}
	return res
}

// waitUpstream waits for the task an upstream *_Task method started and returns its outcome.
func waitUpstream(ctx *simulator.Context, body soap.HasFault) (types.AnyType, types.BaseMethodFault) {
	if f := body.Fault(); f != nil {
		if fault, ok := f.VimFault().(types.BaseMethodFault); ok {
			return nil, fault
		}
		return nil, &types.SystemError{Reason: f.String}
	}
	ref := reflect.ValueOf(body).Elem().FieldByName("Res").Elem().FieldByName("Returnval").Interface().(types.ManagedObjectReference)
	task := ctx.Map.Get(ref).(*simulator.Task)
	task.Wait()
	var info types.TaskInfo
	ctx.WithLock(task, func() { info = task.Info })
	if info.Error != nil {
		return nil, info.Error.Fault
	}
	return info.Result, nil
}

// setTools sets the VM's VMware Tools status as a running or stopped guest agent reports it.
func (b *behaviours) setTools(vm *simulator.VirtualMachine, running bool) {
	run, status := types.VirtualMachineToolsRunningStatusGuestToolsNotRunning, types.VirtualMachineToolsStatusToolsNotRunning
	if running {
		run, status = types.VirtualMachineToolsRunningStatusGuestToolsRunning, types.VirtualMachineToolsStatusToolsOk
	}
	ctx := b.context()
	ctx.WithLock(vm, func() {
		ctx.Update(vm, []types.PropertyChange{
			{Name: "guest.toolsRunningStatus", Val: string(run)},
			{Name: "guest.toolsStatus", Val: status},
			{Name: "summary.guest.toolsRunningStatus", Val: string(run)},
			{Name: "summary.guest.toolsStatus", Val: status},
		})
	})
}

func (b *behaviours) setToolsAll(running bool) {
	for _, e := range b.reg.All("VirtualMachine") {
		b.setTools(e.(*simulator.VirtualMachine), running)
	}
}

// findVM resolves a VM by name or moref value.
func (b *behaviours) findVM(id string) *simulator.VirtualMachine {
	for _, e := range b.reg.All("VirtualMachine") {
		vm := e.(*simulator.VirtualMachine)
		if vm.Self.Value == id || vm.Name == id {
			return vm
		}
	}
	return nil
}
