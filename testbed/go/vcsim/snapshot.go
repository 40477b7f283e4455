package main

// Snapshot create, revert and remove, as vSphere does them (see the list in main.go). Each function is task
// work: it runs under the VM's lock and returns the task's result or fault. The snapshot tree is rebuilt
// rather than edited in place, so a tree a client is being sent never changes under it.

import (
	"maps"
	"slices"
	"time"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
)

const (
	poweredOn  = types.VirtualMachinePowerStatePoweredOn
	poweredOff = types.VirtualMachinePowerStatePoweredOff
	suspended  = types.VirtualMachinePowerStateSuspended
)

type tree = []types.VirtualMachineSnapshotTree
type ref = types.ManagedObjectReference

type createSpec struct {
	name, description string
	memory, quiesce   bool
}

func (b *behaviours) createSnapshot(ctx *simulator.Context, vm *simulator.VirtualMachine, spec createSpec) (types.AnyType, types.BaseMethodFault) {
	power := vm.Runtime.PowerState
	if spec.quiesce && power == poweredOn &&
		(vm.Guest == nil || vm.Guest.ToolsRunningStatus != string(types.VirtualMachineToolsRunningStatusGuestToolsRunning)) {
		return nil, new(types.ToolsUnavailable)
	}
	state := poweredOff // what a revert will restore: memory only if asked for and there is any
	if spec.memory {
		state = power
	}
	config, err := types.DeepCopy(*vm.Config) // later ReconfigVM calls must not show through snapshot.config
	if err != nil {
		return nil, &types.SystemError{Reason: "copying the VM config: " + err.Error()}
	}

	snap := &simulator.VirtualMachineSnapshot{DataSets: copyDataSets(vm.DataSets)}
	snap.Vm = vm.Self
	snap.Config = config
	// Registered under the VM's lock, as vcsim does: the tree published below names it, so it must exist by then.
	// Put takes every ContainerView's lock, which is in the simulator's lock order (VM, view, session registry:
	// see sessionMethods.Logout in behaviours.go).
	ctx.Map.Put(snap) // assigns the moref

	node := types.VirtualMachineSnapshotTree{
		Snapshot:        snap.Self,
		Vm:              vm.Self,
		Name:            spec.name,
		Description:     spec.description,
		Id:              b.state(vm).nextSnapshotID(),
		CreateTime:      time.Now(),
		State:           state,
		Quiesced:        spec.quiesce && power == poweredOn, // vSphere only quiesces a running guest
		ReplaySupported: types.NewBool(false),
	}
	var roots tree
	var parent *ref
	if vm.Snapshot != nil {
		roots, parent = vm.Snapshot.RootSnapshotList, vm.Snapshot.CurrentSnapshot
	}
	if parent == nil {
		roots = append(slices.Clip(roots), node)
	} else {
		roots = withChild(roots, *parent, node)
		p := ctx.Map.Get(*parent).(*simulator.VirtualMachineSnapshot)
		ctx.Update(p, []types.PropertyChange{{Name: "childSnapshot", Val: append(slices.Clip(p.ChildSnapshot), snap.Self)}})
	}

	changes := snapshotChanges(vm.Snapshot, &types.VirtualMachineSnapshotInfo{CurrentSnapshot: &snap.Self, RootSnapshotList: roots})
	changes = append(changes, b.layoutCreate(vm, snap.Self, node.Id, state)...)
	ctx.Update(vm, changes)
	return snap.Self, nil
}

func (b *behaviours) revertSnapshot(ctx *simulator.Context, vm *simulator.VirtualMachine, snap ref, suppressPowerOn bool) types.BaseMethodFault {
	var node *types.VirtualMachineSnapshotTree
	if vm.Snapshot != nil {
		node, _ = findNode(vm.Snapshot.RootSnapshotList, snap, nil)
	}
	if node == nil { // removed while this task waited
		return new(types.NotFound)
	}
	s := ctx.Map.Get(snap).(*simulator.VirtualMachineSnapshot)
	// The VM's config must not share values with the snapshot's (the copy needs a struct around the slice).
	extra, err := types.DeepCopy(types.VirtualMachineConfigSpec{ExtraConfig: s.Config.ExtraConfig})
	if err != nil {
		return &types.SystemError{Reason: "copying the snapshot config: " + err.Error()}
	}
	vm.DataSets = copyDataSets(s.DataSets)

	changes := []types.PropertyChange{
		{Name: "snapshot.currentSnapshot", Val: snap},
		{Name: "config.extraConfig", Val: extra.ExtraConfig},
	}
	power := node.State
	if power == poweredOn && suppressPowerOn {
		power = suspended // the memory state is restored but not resumed
	}
	if power != vm.Runtime.PowerState {
		var boot any
		if power == poweredOn {
			boot = time.Now()
		}
		changes = append(changes,
			types.PropertyChange{Name: "runtime.powerState", Val: power},
			types.PropertyChange{Name: "summary.runtime.powerState", Val: power},
			types.PropertyChange{Name: "runtime.bootTime", Val: boot},
			types.PropertyChange{Name: "summary.runtime.bootTime", Val: boot})
	}
	changes = append(changes, b.layoutRevert(vm, snap)...)
	ctx.Update(vm, changes)
	return nil
}

func (b *behaviours) removeSnapshot(ctx *simulator.Context, vm *simulator.VirtualMachine, snap ref, removeChildren bool) types.BaseMethodFault {
	if vm.Snapshot == nil {
		return new(types.NotFound)
	}
	node, parent := findNode(vm.Snapshot.RootSnapshotList, snap, nil)
	if node == nil {
		return new(types.NotFound)
	}
	removed := []ref{snap}
	if removeChildren {
		removed = allRefs(tree{*node})
	}
	roots := without(vm.Snapshot.RootSnapshotList, snap, removeChildren)

	// The parent MO's childSnapshot list: drop the snapshot, adopt its children if they stay.
	if parent != nil {
		p := ctx.Map.Get(*parent).(*simulator.VirtualMachineSnapshot)
		children := slices.DeleteFunc(slices.Clone(p.ChildSnapshot), func(r ref) bool { return r == snap })
		if !removeChildren {
			for _, c := range node.ChildSnapshotList {
				children = append(children, c.Snapshot)
			}
		}
		ctx.Update(p, []types.PropertyChange{{Name: "childSnapshot", Val: children}})
	}

	var info *types.VirtualMachineSnapshotInfo
	if len(roots) > 0 {
		info = &types.VirtualMachineSnapshotInfo{CurrentSnapshot: vm.Snapshot.CurrentSnapshot, RootSnapshotList: roots}
		if cur := info.CurrentSnapshot; cur != nil && slices.Contains(removed, *cur) {
			info.CurrentSnapshot = parent // "you are here" moves up to the removed snapshot's parent
		}
	}
	b.dropSnapshots(ctx, vm, info, removed)
	return nil
}

func (b *behaviours) removeAllSnapshots(ctx *simulator.Context, vm *simulator.VirtualMachine) types.BaseMethodFault {
	if vm.Snapshot != nil {
		b.dropSnapshots(ctx, vm, nil, allRefs(vm.Snapshot.RootSnapshotList))
	}
	return nil
}

// dropSnapshots publishes the new snapshot info, drops the removed snapshots' files and unregisters them.
func (b *behaviours) dropSnapshots(ctx *simulator.Context, vm *simulator.VirtualMachine, info *types.VirtualMachineSnapshotInfo, removed []ref) {
	changes := snapshotChanges(vm.Snapshot, info)
	changes = append(changes, b.layoutRemove(vm, removed, info == nil)...)
	ctx.Update(vm, changes)
	// Unregistered before the task ends, under the VM's lock (in lock order, like Put in createSnapshot).
	for _, r := range removed {
		ctx.Map.Remove(ctx, r)
	}
}

// snapshotChanges are the property changes from one snapshot info to the next. Sub-paths when the info stays,
// like vcsim, so filters on snapshot.currentSnapshot fire too; filters on `snapshot` get the whole value.
func snapshotChanges(before, after *types.VirtualMachineSnapshotInfo) []types.PropertyChange {
	if after == nil {
		return []types.PropertyChange{{Name: "snapshot", Val: nil}, {Name: "rootSnapshot", Val: nil}}
	}
	var roots []ref
	for _, n := range after.RootSnapshotList {
		roots = append(roots, n.Snapshot)
	}
	if before == nil {
		return []types.PropertyChange{{Name: "snapshot", Val: after}, {Name: "rootSnapshot", Val: roots}}
	}
	// an untyped nil when there is no current snapshot (the removed one was a root): a typed nil pointer in
	// the change would make the property collector panic
	var current any
	if after.CurrentSnapshot != nil {
		current = after.CurrentSnapshot
	}
	return []types.PropertyChange{
		{Name: "snapshot.rootSnapshotList", Val: after.RootSnapshotList},
		{Name: "snapshot.currentSnapshot", Val: current},
		{Name: "rootSnapshot", Val: roots},
	}
}

// findNode returns the tree node for r and its parent snapshot (nil for a root).
func findNode(t tree, r ref, parent *ref) (*types.VirtualMachineSnapshotTree, *ref) {
	for i := range t {
		if t[i].Snapshot == r {
			return &t[i], parent
		}
		if n, p := findNode(t[i].ChildSnapshotList, r, &t[i].Snapshot); n != nil {
			return n, p
		}
	}
	return nil, nil
}

// withChild returns a copy of t with child added under parent.
func withChild(t tree, parent ref, child types.VirtualMachineSnapshotTree) tree {
	out := slices.Clone(t)
	for i := range out {
		if out[i].Snapshot == parent {
			out[i].ChildSnapshotList = append(slices.Clip(out[i].ChildSnapshotList), child)
		} else {
			out[i].ChildSnapshotList = withChild(out[i].ChildSnapshotList, parent, child)
		}
	}
	return out
}

// without returns a copy of t without r; r's children take its place unless they go too.
func without(t tree, r ref, withChildren bool) tree {
	var out tree
	for _, n := range t {
		if n.Snapshot == r {
			if !withChildren {
				out = append(out, n.ChildSnapshotList...)
			}
			continue
		}
		n.ChildSnapshotList = without(n.ChildSnapshotList, r, withChildren)
		out = append(out, n)
	}
	return out
}

func allRefs(t tree) []ref {
	var refs []ref
	for _, n := range t {
		refs = append(refs, n.Snapshot)
		refs = append(refs, allRefs(n.ChildSnapshotList)...)
	}
	return refs
}

// copyDataSets copies the vSphere 8 DataSets a snapshot keeps (vcsim does the same in its own snapshot code).
func copyDataSets(src map[string]*simulator.DataSet) map[string]*simulator.DataSet {
	out := make(map[string]*simulator.DataSet, len(src))
	for k, v := range src {
		if v == nil || (v.Info != nil && v.OmitFromSnapshotAndClone) {
			continue
		}
		c := *v
		if v.Info != nil {
			info := *v.Info
			c.Info = &info
		}
		c.Entries = maps.Clone(v.Entries)
		out[k] = &c
	}
	return out
}
