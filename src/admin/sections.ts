import type { ConsoleRole } from '../accounts/roles.ts';

/** The console's sections, who may open each, and their place in its navigation (docs/console.md). */
export const CONSOLE_SECTIONS = [
  { id: 'accounts', path: '/admin/accounts', roles: ['administrator', 'helpdesk'] },
  { id: 'clients', path: '/admin/clients', roles: ['administrator'] },
  { id: 'rpps', path: '/admin/rpps', roles: ['administrator'] },
  { id: 'establishments', path: '/admin/establishments', roles: ['administrator'] },
  { id: 'audit', path: '/admin/audit', roles: ['administrator', 'auditor'] },
  { id: 'health', path: '/admin/health', roles: ['administrator', 'helpdesk', 'auditor'] },
] as const satisfies readonly { id: string; path: string; roles: readonly ConsoleRole[] }[];

export type ConsoleSectionId = (typeof CONSOLE_SECTIONS)[number]['id'];

export function sectionRoles(id: ConsoleSectionId): readonly ConsoleRole[] {
  return CONSOLE_SECTIONS.find((s) => s.id === id)?.roles ?? [];
}

/** The sections a caller with these roles may open, in navigation order. */
export function sectionsFor(roles: readonly ConsoleRole[]) {
  return CONSOLE_SECTIONS.filter((s) => s.roles.some((r) => roles.includes(r)));
}
