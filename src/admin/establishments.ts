import { Router } from '@koa/router';
import { membersRule } from '../accounts/establishments.ts';
import { type RecordsDeps, renderSection } from './records-common.ts';
import { sectionRoles } from './sections.ts';

/** `/admin/establishments`: the establishments of the configuration file, read-only. */
export function establishmentRoutes(deps: RecordsDeps): Router {
  const { gate, config, services } = deps;
  const router = new Router();

  router.get('/admin/establishments', async (ctx) => {
    const user = await gate(ctx, sectionRoles('establishments'));
    if (!user) return;
    const clients = await services.clients.listMetadata();
    const establishments = [];
    for (const e of config.establishments) {
      establishments.push({
        finess: e.finess,
        name: e.name,
        tid: e.tid,
        pscAlias: e.pscAlias,
        members: membersRule(config, e),
        directoryGroups: e.directoryGroups,
        pscClients: clients
          .filter((c) => c.psc_establishment === e.finess)
          .map((c) => (c.client_name ? `${c.client_name} (${c.client_id})` : c.client_id)),
        memberCount: await services.establishments.memberCount(e),
      });
    }
    await renderSection(deps, ctx, user, 'establishments', 'console-establishments', { establishments });
  });

  return router;
}
