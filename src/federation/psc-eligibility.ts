import { interactionPolicy, type KoaContextWithOIDC } from 'oidc-provider';
import type { EstablishmentMembers } from '../accounts/establishments.ts';
import type { NationalIdentities } from '../accounts/national-identity.ts';
import type { Config } from '../config/schema.ts';
import { pscEstablishmentOf } from './psc-profile.ts';

export const PSC_ELIGIBILITY_PROMPT = 'psc_eligibility';
export type PscRefusal = 'link_inactive' | 'link_conflict' | 'not_member';

/**
 * Pro Santé Connect must not federate a professional whose national identity link is no longer true:
 * an account whose RPPS link is `inactive` (left, registration ended) or in `conflict` (awaiting review)
 * is refused, after its authentication, with a page that says why. An account without a link is not
 * refused: PSC pairs it itself. In a GHT, an account is federated only for the establishments it
 * belongs to: PSC would otherwise pair it under another establishment's `tid`.
 */
export function pscEligibilityPrompt(
  config: Config,
  identities: NationalIdentities,
  establishments: EstablishmentMembers,
) {
  const { Prompt, Check } = interactionPolicy;
  const refusals = new WeakMap<KoaContextWithOIDC, PscRefusal>();
  return new Prompt(
    { name: PSC_ELIGIBILITY_PROMPT, requestable: false },
    (ctx: KoaContextWithOIDC) => ({ psc_refusal: refusals.get(ctx) }),
    new Check(
      'psc_link',
      'the account may not be federated to Pro Santé Connect',
      'access_denied',
      async (ctx) => {
        const { session, client } = ctx.oidc;
        const establishment = client ? pscEstablishmentOf(config, client.metadata()) : undefined;
        if (!session?.accountId || !establishment) return Check.NO_NEED_TO_PROMPT;
        if (!(await establishments.isMember(session.accountId, establishment))) {
          refusals.set(ctx, 'not_member');
          return Check.REQUEST_PROMPT;
        }
        const link = await identities.findByAccount(session.accountId);
        if (link?.status === 'inactive' || link?.status === 'conflict') {
          refusals.set(ctx, link.status === 'inactive' ? 'link_inactive' : 'link_conflict');
          return Check.REQUEST_PROMPT;
        }
        return Check.NO_NEED_TO_PROMPT;
      },
    ),
  );
}
