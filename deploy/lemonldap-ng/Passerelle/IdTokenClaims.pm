# LemonLDAP::NG portal plugin (2.0.15 and later): makes the authentication claims of the ID token of an
# OpenID Connect provider (acr, amr) available to the provider's "Exported attributes", which LemonLDAP::NG
# 2.16 otherwise fills from the UserInfo response only (Lemonldap::NG::Portal::UserDB::OpenIDConnect).
# Passerelle, like every OpenID Connect provider, puts acr and amr in the ID token, not in UserInfo.
#
# It uses the documented hooks oidcGotIDToken (the verified ID token's payload) and oidcGotUserInfo (the
# UserInfo response, before the exported attributes are read from it): see "Available plugin hooks" and
# "Write a custom plugin" in the LemonLDAP::NG documentation. A multi-valued claim (amr) is joined with
# multiValuesSeparator, as LemonLDAP::NG stores multi-valued attributes.
#
# Install: copy this file as Passerelle/IdTokenClaims.pm into Perl's @INC (e.g. /usr/local/lib/site_perl),
# then General Parameters > Plugins > Custom plugins: Passerelle::IdTokenClaims, and map the claims in the
# provider's Exported attributes, e.g. amr => amr, acr => acr.
package Passerelle::IdTokenClaims;

use strict;
use Mouse;
use Lemonldap::NG::Portal::Main::Constants qw(PE_OK);

our $VERSION = '1.0';

extends 'Lemonldap::NG::Portal::Main::Plugin';

use constant hook => {
    oidcGotIDToken  => 'keepIdTokenClaims',
    oidcGotUserInfo => 'addIdTokenClaims',
};

# The ID token's claims that describe the authentication (OpenID Connect Core 1.0, section 2).
use constant CLAIMS => qw(acr amr);

sub keepIdTokenClaims {
    my ( $self, $req, $op, $payload ) = @_;
    $req->data->{passerelleIdTokenClaims} =
      { map { exists $payload->{$_} ? ( $_ => $payload->{$_} ) : () } CLAIMS };
    return PE_OK;
}

sub addIdTokenClaims {
    my ( $self, $req, $op, $userinfo ) = @_;
    my $claims    = $req->data->{passerelleIdTokenClaims} || {};
    my $separator = $self->conf->{multiValuesSeparator} // '; ';
    foreach my $name ( keys %$claims ) {
        my $value = $claims->{$name};

        # The signed ID token is authoritative for how the user authenticated.
        $userinfo->{$name} =
          ref $value eq 'ARRAY' ? join( $separator, @$value ) : $value;
    }
    return PE_OK;
}

1;
