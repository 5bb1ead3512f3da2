import { Router } from '@koa/router';
import { ReviewDecisionError, type ReviewItem } from '../accounts/national-identity.ts';
import type { Account } from '../accounts/store.ts';
import type { SyncSummary } from '../rpps/sync.ts';
import { consoleAct, consoleForm, type RecordsDeps, renderError, renderSection } from './records-common.ts';
import { sectionRoles } from './sections.ts';

const DONE = ['accepted', 'rejected', 'sync', 'busy'] as const;

/** One side of the evidence: the local account, or what the Annuaire Santé says. */
function person(record: Record<string, unknown> | null | undefined) {
  if (!record) return undefined;
  const text = (key: string) => (typeof record[key] === 'string' ? (record[key] as string) : undefined);
  return {
    givenName: text('givenName'),
    familyName: text('familyName'),
    professionCode: text('professionCode'),
    categoryCode: text('categoryCode'),
  };
}

/** `/admin/rpps`: the review queue with its evidence side by side, accept/reject, the last sync and a new one. */
export function rppsRoutes(deps: RecordsDeps): Router {
  const { gate, services, rpps } = deps;
  const router = new Router();
  const roles = sectionRoles('rpps');
  const accountOf = async (id: string | null, cache: Map<string, Account | undefined>) => {
    if (!id) return undefined;
    if (!cache.has(id)) cache.set(id, await services.accounts.findById(id));
    return cache.get(id);
  };
  const describe = async (item: ReviewItem, cache: Map<string, Account | undefined>) => {
    const account = await accountOf(item.accountId, cache);
    const other = await accountOf(item.otherAccountId, cache);
    const before = item.evidence.ownLinkBefore as Record<string, unknown> | null | undefined;
    return {
      id: item.id,
      kind: item.kind,
      idNat: item.idNat,
      /** RPPS or Pro Santé Identité (`identity.registry.<origin>`). */
      origin: item.origin,
      source: item.source,
      createdAt: item.createdAt,
      reason: typeof item.evidence.reason === 'string' ? item.evidence.reason : undefined,
      local: {
        username: account?.username ?? item.accountId,
        givenName: account?.givenName ?? undefined,
        familyName: account?.familyName ?? undefined,
        createdAt: account?.createdAt,
        // A snapshot from before Pro Santé Identité has no origin: the RPPS.
        linkBefore: before
          ? {
              idNat: String(before.idNat),
              origin: before.origin === 'psi' ? 'psi' : 'rpps',
              status: String(before.status),
              source: String(before.source),
            }
          : undefined,
      },
      national: person(item.evidence.national as Record<string, unknown> | null | undefined),
      heldBy: other
        ? `${other.username} (${other.givenName ?? ''} ${other.familyName ?? ''})`.trim()
        : undefined,
    };
  };

  router.get('/admin/rpps', async (ctx) => {
    const user = await gate(ctx, roles);
    if (!user) return;
    const cache = new Map<string, Account | undefined>();
    const reviews = [];
    for (const item of await services.identities.openReviews()) reviews.push(await describe(item, cache));
    const [last] = await rpps.sync.runs(1);
    await renderSection(deps, ctx, user, 'rpps', 'console-rpps', {
      reviews,
      done: DONE.find((d) => d === ctx.query.done),
      last: last && {
        status: last.status,
        mode: last.mode,
        trigger: last.trigger,
        instanceId: last.instance_id,
        startedAt: last.started_at,
        finishedAt: last.finished_at,
        error: last.error,
        summary: last.summary as unknown as SyncSummary | null,
      },
      apiConfigured: rpps.client !== undefined,
    });
  });

  for (const decision of ['accept', 'reject'] as const) {
    router.post(`/admin/rpps/review/:id/${decision}`, async (ctx) => {
      const user = await gate(ctx, roles);
      if (!user) return;
      if (!(await consoleForm(deps, ctx, user))) return;
      const item = await services.identities.findReview(ctx.params.id ?? '');
      if (!item) return renderError(deps, ctx, 404, 'console.rpps.no_review');
      try {
        // Audited by the service in the same transaction (rpps.review.accepted / rejected, with the actor).
        await services.identities.decide(item.id, decision, `console:${user.who.account.username}`);
      } catch (err) {
        if (err instanceof ReviewDecisionError) return renderError(deps, ctx, 409, 'console.rpps.decided');
        throw err;
      }
      ctx.redirect(`/admin/rpps?done=${decision === 'accept' ? 'accepted' : 'rejected'}`);
    });
  }

  router.post('/admin/rpps/sync', async (ctx) => {
    const user = await gate(ctx, roles);
    if (!user) return;
    if (!(await consoleForm(deps, ctx, user))) return;
    // As `passerelle rpps sync`: one run at a time across instances (the sync's job lock).
    const result = await rpps.sync.run({ trigger: 'command' });
    await services.audit.record(
      consoleAct(ctx, user, {
        type: 'admin.rpps.sync',
        outcome: result.kind === 'busy' ? 'failure' : 'success',
        reason: result.kind === 'busy' ? 'busy' : undefined,
        detail: result.kind === 'done' ? { runId: result.summary.runId, status: result.summary.status } : {},
      }),
    );
    ctx.redirect(`/admin/rpps?done=${result.kind === 'busy' ? 'busy' : 'sync'}`);
  });

  return router;
}
