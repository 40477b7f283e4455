package main

// HasPrivilegeOnEntities as vCenter answers it, from the roles and permissions the AuthorizationManager holds.
// Upstream keeps what AddAuthorizationRole, UpdateAuthorizationRole and SetEntityPermissions are given, but answers
// every check with "granted".
//
// What a session holds on an entity comes from the permissions closest to the entity that name the session's user:
// those set on the entity itself, else those of the nearest ancestor that propagate (in vCenter a permission on a
// child overrides the one inherited from its parent); the union of their roles' privileges. vcsim has no group
// membership, so group permissions are not counted; a principal written DOMAIN\user also names user@domain, and
// case does not matter. A user that no permission anywhere names keeps upstream's answer, everything granted: vcsim
// lets every login do everything, and the test bed's own logins are such users. A session that does not exist holds
// nothing (vCenter's answer too).
//
// Only this check reads the permissions: a session lacking a privilege can still make the calls that need it.

import (
	"strings"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

type authzMethods struct {
	*simulator.AuthorizationManager
}

func (w *authzMethods) Get() mo.Reference { return w.AuthorizationManager }

func (w *authzMethods) HasPrivilegeOnEntities(ctx *simulator.Context, req *types.HasPrivilegeOnEntities) soap.HasFault {
	unwrap(ctx, w.Self)
	body := new(methods.HasPrivilegeOnEntitiesBody)
	user, exists := sessionUser(ctx, req.SessionId)
	named := exists && w.names(user)
	var res []types.EntityPrivilege
	for _, ref := range req.Entity {
		if _, ok := ctx.Map.Get(ref).(mo.Entity); !ok {
			body.Fault_ = simulator.Fault("", &types.ManagedObjectNotFound{Obj: ref})
			return body
		}
		var held map[string]bool
		if named {
			held = w.held(ctx, user, ref)
		}
		entity := types.EntityPrivilege{Entity: ref}
		for _, id := range req.PrivId {
			entity.PrivAvailability = append(entity.PrivAvailability, types.PrivilegeAvailability{
				PrivId: id, IsGranted: exists && (!named || held[id])})
		}
		res = append(res, entity)
	}
	body.Res = &types.HasPrivilegeOnEntitiesResponse{Returnval: res}
	return body
}

// sessionUser is the user name of the session with this key.
func sessionUser(ctx *simulator.Context, key string) (string, bool) {
	if ctx.Session != nil && ctx.Session.Key == key {
		return ctx.Session.UserName, true
	}
	if ctx.Session == nil {
		return "", false
	}
	// the calling session's view of the SessionManager lists every session
	if m, ok := ctx.Session.Get(ctx.Map.SessionManager().Reference()).(*simulator.SessionManager); ok {
		for _, s := range m.SessionList {
			if s.Key == key {
				return s.UserName, true
			}
		}
	}
	return "", false
}

// names reports whether any permission anywhere names the user.
func (w *authzMethods) names(user string) bool {
	all := w.RetrieveAllPermissions(new(types.RetrieveAllPermissions)).(*methods.RetrieveAllPermissionsBody)
	for _, p := range all.Res.Returnval {
		if !p.Group && samePrincipal(p.Principal, user) {
			return true
		}
	}
	return false
}

// held is the set of privileges the user holds on the entity (see the top of this file).
func (w *authzMethods) held(ctx *simulator.Context, user string, ref types.ManagedObjectReference) map[string]bool {
	for at, own := &ref, true; at != nil; own = false {
		entity, ok := ctx.Map.Get(*at).(mo.Entity)
		if !ok {
			break
		}
		set := w.RetrieveEntityPermissions(ctx, &types.RetrieveEntityPermissions{Entity: *at}).(*methods.RetrieveEntityPermissionsBody)
		var roles []int32
		for _, p := range set.Res.Returnval {
			if !p.Group && samePrincipal(p.Principal, user) && (own || p.Propagate) {
				roles = append(roles, p.RoleId)
			}
		}
		if len(roles) > 0 {
			held := map[string]bool{}
			for _, role := range w.RoleList {
				for _, id := range roles {
					if role.RoleId == id {
						for _, priv := range role.Privilege {
							held[priv] = true
						}
					}
				}
			}
			return held
		}
		at = entity.Entity().Parent
	}
	return nil
}

// samePrincipal compares user names as vCenter's two spellings: DOMAIN\user and user@domain, whatever the case.
func samePrincipal(a, b string) bool {
	norm := func(s string) string {
		s = strings.ToLower(s)
		if domain, user, ok := strings.Cut(s, `\`); ok {
			return user + "@" + domain
		}
		return s
	}
	return norm(a) == norm(b)
}
