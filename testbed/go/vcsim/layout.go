package main

// Snapshot files in layoutEx, with sizes (the rules and the size formula are in main.go's header).
// vcsim gives snapshots one 0-byte .vmsn, no memory file and no delta disks, and rebuilds layoutEx with new
// file keys whenever it removes a snapshot. Here layoutEx is kept as the model: each function takes the VM's
// layoutEx, returns the property changes for the next one, and never edits a published slice in place.

import (
	"fmt"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
)

const (
	vmsnBytes            = 32 << 10 // .vmsn, every snapshot
	deltaDescriptorBytes = 512      // <disk>-NNNNNN.vmdk
	deltaExtentBytes     = 16 << 20 // <disk>-NNNNNN-delta.vmdk
	// .vmem: config.hardware.memoryMB MiB, for snapshots whose state is not poweredOff
)

type (
	layoutEx  = types.VirtualMachineFileLayoutEx
	diskChain = types.VirtualMachineFileLayoutExDiskLayout
)

// vmState is what vcsim keeps private or does not keep: the snapshot id counter, the next layoutEx file key
// (never reused, so a stale key cannot point at a new file) and the delta disk sequence number.
type vmState struct {
	mu         sync.Mutex
	snapshotID int32
	fileKey    int32
	delta      int
}

func (b *behaviours) state(vm *simulator.VirtualMachine) *vmState {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.vms[vm.Self]
	if s == nil {
		s = &vmState{}
		b.vms[vm.Self] = s
	}
	return s
}

func (s *vmState) nextSnapshotID() int32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.snapshotID++
	return s.snapshotID
}

// addFile appends a file to lx.File and returns its key.
func (s *vmState) addFile(lx *layoutEx, name string, kind types.VirtualMachineFileLayoutExFileType, size int64) int32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range lx.File { // keys vcsim itself added (new disks) must not be handed out again
		s.fileKey = max(s.fileKey, f.Key+1)
	}
	key := s.fileKey
	s.fileKey++
	lx.File = append(slices.Clip(lx.File), types.VirtualMachineFileLayoutExFileInfo{
		Key: key, Name: name, Type: string(kind), Size: size, UniqueSize: size, Accessible: types.NewBool(true),
	})
	return key
}

// newDeltas returns disks with a new delta (descriptor + extent) on top of each chain; the VM writes there next.
func (s *vmState) newDeltas(vm *simulator.VirtualMachine, lx *layoutEx, disks []diskChain) []diskChain {
	s.mu.Lock()
	s.delta++
	n := s.delta
	s.mu.Unlock()
	out := slices.Clone(disks)
	for i, d := range out {
		if len(d.Chain) == 0 || len(d.Chain[0].FileKey) == 0 {
			continue
		}
		base := strings.TrimSuffix(path.Base(descriptor(lx, d.Chain[0])), ".vmdk")
		desc := s.addFile(lx, inSnapshotDir(vm, fmt.Sprintf("%s-%06d.vmdk", base, n)),
			types.VirtualMachineFileLayoutExFileTypeDiskDescriptor, deltaDescriptorBytes)
		ext := s.addFile(lx, inSnapshotDir(vm, fmt.Sprintf("%s-%06d-delta.vmdk", base, n)),
			types.VirtualMachineFileLayoutExFileTypeDiskExtent, deltaExtentBytes)
		out[i].Chain = append(slices.Clip(d.Chain), types.VirtualMachineFileLayoutExDiskUnit{FileKey: []int32{desc, ext}})
	}
	return out
}

// layoutCreate: the snapshot keeps the disk chains as they are now; the VM moves on to new deltas.
func (b *behaviours) layoutCreate(vm *simulator.VirtualMachine, snap ref, id int32, state types.VirtualMachinePowerState) []types.PropertyChange {
	s, lx := b.state(vm), *vm.LayoutEx
	data := s.addFile(&lx, inSnapshotDir(vm, fmt.Sprintf("%s-Snapshot%d.vmsn", vm.Name, id)),
		types.VirtualMachineFileLayoutExFileTypeSnapshotData, vmsnBytes)
	memory := int32(-1)
	if state != poweredOff {
		memory = s.addFile(&lx, inSnapshotDir(vm, fmt.Sprintf("%s-Snapshot%d.vmem", vm.Name, id)),
			types.VirtualMachineFileLayoutExFileTypeSnapshotMemory, int64(vm.Config.Hardware.MemoryMB)<<20)
	}
	lx.Snapshot = append(slices.Clip(lx.Snapshot), types.VirtualMachineFileLayoutExSnapshotLayout{
		Key: snap, DataKey: data, MemoryKey: memory, Disk: slices.Clone(lx.Disk),
	})
	lx.Disk = s.newDeltas(vm, &lx, lx.Disk)
	return b.publishLayout(vm, &lx)
}

// layoutRevert: the VM's writes since the last snapshot are discarded; it writes to a new delta on top of the
// snapshot's chains.
func (b *behaviours) layoutRevert(vm *simulator.VirtualMachine, snap ref) []types.PropertyChange {
	lx := *vm.LayoutEx
	for _, sl := range lx.Snapshot {
		if sl.Key == snap {
			lx.Disk = b.state(vm).newDeltas(vm, &lx, sl.Disk)
		}
	}
	return b.publishLayout(vm, &lx)
}

// layoutRemove drops the snapshots' entries; their files go unless a chain still uses them. With no snapshot
// left the deltas are consolidated into the base disks.
func (b *behaviours) layoutRemove(vm *simulator.VirtualMachine, removed []ref, none bool) []types.PropertyChange {
	lx := *vm.LayoutEx
	lx.Snapshot = slices.DeleteFunc(slices.Clone(lx.Snapshot), func(sl types.VirtualMachineFileLayoutExSnapshotLayout) bool {
		return slices.Contains(removed, sl.Key)
	})
	if none {
		lx.Disk = slices.Clone(lx.Disk)
		for i := range lx.Disk {
			lx.Disk[i].Chain = slices.Clone(lx.Disk[i].Chain[:min(1, len(lx.Disk[i].Chain))])
		}
	}
	return b.publishLayout(vm, &lx)
}

// refreshStorage republishes the layout (RefreshStorageInfo).
func (b *behaviours) refreshStorage(ctx *simulator.Context, vm *simulator.VirtualMachine) {
	lx := *vm.LayoutEx
	ctx.Update(vm, b.publishLayout(vm, &lx))
}

// publishLayout drops snapshot and disk files nothing refers to, and returns the changes for layoutEx and what
// derives from it: layout, storage, summary.storage, and the disks' capacity fields if vcsim left them unset.
func (b *behaviours) publishLayout(vm *simulator.VirtualMachine, lx *layoutEx) []types.PropertyChange {
	used := map[int32]bool{}
	useChains := func(disks []diskChain) {
		for _, d := range disks {
			for _, u := range d.Chain {
				for _, k := range u.FileKey {
					used[k] = true
				}
			}
		}
	}
	useChains(lx.Disk)
	for _, sl := range lx.Snapshot {
		used[sl.DataKey], used[sl.MemoryKey] = true, true
		useChains(sl.Disk)
	}
	lx.File = slices.DeleteFunc(slices.Clone(lx.File), func(f types.VirtualMachineFileLayoutExFileInfo) bool {
		switch types.VirtualMachineFileLayoutExFileType(f.Type) {
		case types.VirtualMachineFileLayoutExFileTypeSnapshotData, types.VirtualMachineFileLayoutExFileTypeSnapshotMemory,
			types.VirtualMachineFileLayoutExFileTypeDiskDescriptor, types.VirtualMachineFileLayoutExFileTypeDiskExtent:
			return !used[f.Key]
		}
		return false
	})
	lx.Timestamp = time.Now()

	// The older `layout` property lists the same files by name.
	layout := *vm.Layout
	layout.Disk, layout.Snapshot = nil, nil
	for _, d := range lx.Disk {
		dl := types.VirtualMachineFileLayoutDiskLayout{Key: d.Key}
		for _, u := range d.Chain {
			dl.DiskFile = append(dl.DiskFile, descriptor(lx, u))
		}
		layout.Disk = append(layout.Disk, dl)
	}
	for _, sl := range lx.Snapshot {
		sn := types.VirtualMachineFileLayoutSnapshotLayout{Key: sl.Key, SnapshotFile: []string{fileName(lx, sl.DataKey)}}
		if sl.MemoryKey >= 0 {
			sn.SnapshotFile = append(sn.SnapshotFile, fileName(lx, sl.MemoryKey))
		}
		for _, d := range sl.Disk {
			for _, u := range d.Chain {
				sn.SnapshotFile = append(sn.SnapshotFile, descriptor(lx, u))
			}
		}
		layout.Snapshot = append(layout.Snapshot, sn)
	}

	changes := []types.PropertyChange{{Name: "layoutEx", Val: lx}, {Name: "layout", Val: &layout}}
	changes = append(changes, b.storageChanges(vm, lx)...)
	return append(changes, diskCapacityChanges(vm)...)
}

// storageChanges: committed = all files, unshared = .vmdk files (as vcsim counts them), uncommitted = disk
// capacity not yet written to.
func (b *behaviours) storageChanges(vm *simulator.VirtualMachine, lx *layoutEx) []types.PropertyChange {
	var committed, unshared, capacity int64
	perDS := map[string]*types.VirtualMachineUsageOnDatastore{}
	var order []string
	for _, f := range lx.File {
		var p object.DatastorePath
		p.FromString(f.Name)
		u := perDS[p.Datastore]
		if u == nil {
			u = &types.VirtualMachineUsageOnDatastore{}
			if ds := b.reg.FindByName(p.Datastore, vm.Datastore); ds != nil {
				u.Datastore = ds.Reference()
			}
			perDS[p.Datastore] = u
			order = append(order, p.Datastore)
		}
		u.Committed += f.Size
		committed += f.Size
		if strings.HasSuffix(f.Name, ".vmdk") {
			u.Unshared += f.Size
			unshared += f.Size
		}
	}
	for _, d := range disks(vm) {
		capacity += diskBytes(d)
	}
	uncommitted := max(0, capacity-unshared)
	var usage []types.VirtualMachineUsageOnDatastore
	for i, name := range order {
		u := *perDS[name]
		if i == 0 {
			u.Uncommitted = uncommitted
		}
		usage = append(usage, u)
	}
	now := time.Now()
	return []types.PropertyChange{
		{Name: "storage", Val: &types.VirtualMachineStorageInfo{PerDatastoreUsage: usage, Timestamp: now}},
		{Name: "summary.storage.committed", Val: committed},
		{Name: "summary.storage.uncommitted", Val: uncommitted},
		{Name: "summary.storage.unshared", Val: unshared},
		{Name: "summary.storage.timestamp", Val: now},
	}
}

// diskCapacityChanges sets capacityInBytes/capacityInKB where vcsim left one of them 0.
func diskCapacityChanges(vm *simulator.VirtualMachine) []types.PropertyChange {
	for _, d := range disks(vm) {
		if d.CapacityInBytes != d.CapacityInKB*1024 {
			devices := object.VirtualDeviceList(slices.Clone(vm.Config.Hardware.Device))
			for i, dev := range devices {
				if disk, ok := dev.(*types.VirtualDisk); ok {
					c := *disk
					c.CapacityInBytes = diskBytes(disk)
					c.CapacityInKB = c.CapacityInBytes / 1024
					devices[i] = &c
				}
			}
			return []types.PropertyChange{{Name: "config.hardware.device", Val: []types.BaseVirtualDevice(devices)}}
		}
	}
	return nil
}

func disks(vm *simulator.VirtualMachine) []*types.VirtualDisk {
	var out []*types.VirtualDisk
	for _, dev := range vm.Config.Hardware.Device {
		if d, ok := dev.(*types.VirtualDisk); ok {
			out = append(out, d)
		}
	}
	return out
}

func diskBytes(d *types.VirtualDisk) int64 {
	if d.CapacityInBytes > 0 {
		return d.CapacityInBytes
	}
	return d.CapacityInKB * 1024
}

// descriptor is the name of the disk unit's descriptor file (vcsim lists the extent first, vSphere last).
func descriptor(lx *layoutEx, u types.VirtualMachineFileLayoutExDiskUnit) string {
	for _, f := range lx.File {
		if slices.Contains(u.FileKey, f.Key) && f.Type == string(types.VirtualMachineFileLayoutExFileTypeDiskDescriptor) {
			return f.Name
		}
	}
	return ""
}

func fileName(lx *layoutEx, key int32) string {
	for _, f := range lx.File {
		if f.Key == key {
			return f.Name
		}
	}
	return ""
}

// inSnapshotDir is name's datastore path in the VM's snapshot (working) directory.
func inSnapshotDir(vm *simulator.VirtualMachine, name string) string {
	var p object.DatastorePath
	if dir := vm.Config.Files.SnapshotDirectory; dir != "" {
		p.FromString(dir)
	} else {
		p.FromString(vm.Config.Files.VmPathName)
		p.Path = path.Dir(p.Path)
	}
	p.Path = path.Join(p.Path, name)
	return p.String()
}
