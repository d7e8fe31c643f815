#!/usr/bin/env python3
"""The lab PKI of the verification-path tests (tests/25-*.bats and on):
what certtool cannot make -- CRLs and OCSP responses with chosen times,
signers and claimed issuers, a subject with control characters.

  labpki.py init DIR
      ca.pem/.key            the root (the tests' ca-file)
      inter.pem/.key         an intermediate under ca; it issues the leaves
                             and its own CRL
      leaf.pem/.key          localhost, 127.0.0.1, ::1 (under inter)
      leaf-full.pem          leaf + inter
      leaf2.pem/.key         the same names, another key (under inter)
      leaf2-full.pem         leaf2 + inter
      leaf2-bait-full.pem    leaf2 + inter + leaf: leaf merely appended
      revoked.pem/.key, revoked-full.pem   listed in inter.crl
      inter.crl              by inter: revokes revoked (30 days)
      inter-fresh.crl        by inter: revokes nothing (30 days)
      rogue.pem/.key         self-signed, trusted by nobody
      mustaple.pem/.key      RSA, TLS feature status_request (under inter)
      mustaple-full.pem      mustaple + inter
      inter-rogue.pem        inter + rogue: a chain with rogue appended
      delegate.pem/.key      OCSP responder certified by inter
      rootdelegate.pem/.key  OCSP responder certified by ca (not by inter)
      ocsp-good.der          mustaple good, signed by inter
      ocsp-rogue.der         mustaple good, signed by rogue (embedded)
      ocsp-delegate.der      mustaple good, by delegate (embedded)
      ocsp-rootdelegate.der  mustaple good, by rootdelegate (embedded)
      ocsp-old.der           mustaple good, by inter, next update passed
      ocsp-other.der         leaf2 good, by inter (another certificate)
      ctrl.pem/.key, ctrl-full.pem   subject CN with ESC, BEL and CSI
      nameonly.pem/.key      DNS:localhost only (under ca)
      ipcn.pem/.key          CN=127.0.0.1, no subjectAltName (under ca)
      dotted.pem/.key        CN=127.1, no subjectAltName (under ca)
      wild.pem/.key          DNS:*.lab.test (under ca)
      idna.pem/.key          DNS:xn--bcher-kva.lab.test (under ca)
  labpki.py leaf DIR NAME --seconds N
      NAME.pem/.key, NAME-full.pem: localhost, 127.0.0.1 under inter,
      valid for N more seconds
  labpki.py crl DIR ISSUER OUT [--next SECONDS] [--revoke NAME]...
      a CRL by ISSUER (name in DIR) whose next update is SECONDS away
  labpki.py forge-crl CLAIM KEY OUT
      a CRL naming CLAIM (a certificate file) as its issuer, name and
      key identifier, but signed with KEY
"""
import argparse
import datetime
import ipaddress
import os
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

NOW = datetime.datetime.utcnow().replace(microsecond=0)
DAY = datetime.timedelta(days=1)


def new_key(kind="ec"):
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


def write(path, data, mode=0o644):
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)


def pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM)


def save(d, name, cert, key):
    write(os.path.join(d, name + ".pem"), pem(cert))
    write(os.path.join(d, name + ".key"), key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()), 0o600)


def load(d, name):
    with open(os.path.join(d, name + ".pem"), "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    with open(os.path.join(d, name + ".key"), "rb") as f:
        key = serialization.load_pem_private_key(f.read(), None)
    return cert, key


def usage(ca=False, rsa_key=False):
    return x509.KeyUsage(
        digital_signature=True, content_commitment=False,
        key_encipherment=rsa_key and not ca, data_encipherment=False,
        key_agreement=False, key_cert_sign=ca, crl_sign=ca,
        encipher_only=False, decipher_only=False)


def make(cn, key, issuer=None, *, ca=False, dns=(), ips=(), eku=None,
         must_staple=False, with_san=True, seconds=30 * 86400):
    """A certificate for key; issuer is (cert, key), None: self-signed."""
    iss_cert, iss_key = issuer if issuer else (None, key)
    b = (x509.CertificateBuilder()
         .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                                     cn)]))
         .issuer_name(iss_cert.subject if iss_cert else
                      x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                                    cn)]))
         .public_key(key.public_key())
         .serial_number(x509.random_serial_number())
         .not_valid_before(NOW - DAY)
         .not_valid_after(NOW + datetime.timedelta(seconds=seconds))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None),
                        critical=True)
         .add_extension(usage(ca, isinstance(key, rsa.RSAPrivateKey)),
                        critical=True)
         .add_extension(x509.SubjectKeyIdentifier.from_public_key(
             key.public_key()), critical=False)
         .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
             iss_key.public_key()), critical=False))
    if not ca:
        b = b.add_extension(x509.ExtendedKeyUsage(
            [eku or ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    names = [x509.DNSName(n) for n in dns] + \
        [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    if names and with_san:
        b = b.add_extension(x509.SubjectAlternativeName(names),
                            critical=False)
    if must_staple:
        b = b.add_extension(x509.TLSFeature(
            [x509.TLSFeatureType.status_request]), critical=False)
    return b.sign(iss_key, hashes.SHA256())


def crl(issuer, issuer_key, revoked=(), next_update=30 * 86400,
        claim=None):
    """A CRL signed by issuer_key; claim: the certificate whose name and
    key identifier it carries (default: issuer)."""
    claim = claim or issuer
    ski = claim.extensions.get_extension_for_class(
        x509.SubjectKeyIdentifier).value
    b = (x509.CertificateRevocationListBuilder()
         .issuer_name(claim.subject)
         .last_update(NOW - datetime.timedelta(minutes=1))
         .next_update(NOW + datetime.timedelta(seconds=next_update))
         .add_extension(x509.AuthorityKeyIdentifier(ski.digest, None, None),
                        critical=False)
         .add_extension(x509.CRLNumber(int(NOW.timestamp())),
                        critical=False))
    for c in revoked:
        b = b.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(c.serial_number)
            .revocation_date(NOW - DAY).build())
    return b.sign(issuer_key, hashes.SHA256()).public_bytes(
        serialization.Encoding.PEM)


def staple(cert, issuer, signer, signer_key, embed=False, this=None,
           nxt=None):
    b = ocsp.OCSPResponseBuilder().add_response(
        cert=cert, issuer=issuer, algorithm=hashes.SHA1(),
        cert_status=ocsp.OCSPCertStatus.GOOD,
        this_update=this or NOW - datetime.timedelta(minutes=5),
        next_update=nxt or NOW + 7 * DAY,
        revocation_time=None, revocation_reason=None)
    b = b.responder_id(ocsp.OCSPResponderEncoding.HASH, signer)
    if embed:
        b = b.certificates([signer])
    return b.sign(signer_key, hashes.SHA256()).public_bytes(
        serialization.Encoding.DER)


def init(d):
    os.makedirs(d, exist_ok=True)
    done = os.path.join(d, "idna.pem")  # written last
    if os.path.exists(done):
        return
    local = {"dns": ["localhost"], "ips": ["127.0.0.1", "::1"]}
    ca_key = new_key()
    ca = make("tlsshim lab root", ca_key, ca=True)
    save(d, "ca", ca, ca_key)
    inter_key = new_key()
    inter = make("tlsshim lab intermediate", inter_key, (ca, ca_key),
                 ca=True)
    save(d, "inter", inter, inter_key)

    def leaf(name, cn=None, issuer=(inter, inter_key), kind="ec", **kw):
        k = new_key(kind)
        c = make(cn or "lab " + name, k, issuer, **kw)
        save(d, name, c, k)
        if issuer[0] is inter:
            write(os.path.join(d, name + "-full.pem"), pem(c) + pem(inter))
        return c, k

    lf, _ = leaf("leaf", **local)
    l2, _ = leaf("leaf2", **local)
    write(os.path.join(d, "leaf2-bait-full.pem"),
          pem(l2) + pem(inter) + pem(lf))
    rv, _ = leaf("revoked", **local)
    write(os.path.join(d, "inter.crl"), crl(inter, inter_key, [rv]))
    write(os.path.join(d, "inter-fresh.crl"), crl(inter, inter_key))
    rogue_key = new_key()
    rogue = make("tlsshim lab rogue", rogue_key, ca=True)
    save(d, "rogue", rogue, rogue_key)
    ms, _ = leaf("mustaple", kind="rsa", must_staple=True, **local)
    write(os.path.join(d, "inter-rogue.pem"), pem(inter) + pem(rogue))
    dg, dg_key = leaf("delegate", eku=ExtendedKeyUsageOID.OCSP_SIGNING)
    rd, rd_key = leaf("rootdelegate", issuer=(ca, ca_key),
                      eku=ExtendedKeyUsageOID.OCSP_SIGNING)
    write(os.path.join(d, "ocsp-good.der"),
          staple(ms, inter, inter, inter_key))
    write(os.path.join(d, "ocsp-rogue.der"),
          staple(ms, inter, rogue, rogue_key, embed=True))
    write(os.path.join(d, "ocsp-delegate.der"),
          staple(ms, inter, dg, dg_key, embed=True))
    write(os.path.join(d, "ocsp-rootdelegate.der"),
          staple(ms, inter, rd, rd_key, embed=True))
    write(os.path.join(d, "ocsp-old.der"),
          staple(ms, inter, inter, inter_key, this=NOW - 9 * DAY,
                 nxt=NOW - 2 * DAY))
    write(os.path.join(d, "ocsp-other.der"),
          staple(l2, inter, inter, inter_key))
    leaf("ctrl", cn="evil\x1b[31mRED\x1b]0;title\x07bell\x9b2J", **local)
    root = (ca, ca_key)
    leaf("nameonly", issuer=root, dns=["localhost"])
    leaf("ipcn", cn="127.0.0.1", issuer=root)
    leaf("dotted", cn="127.1", issuer=root)
    leaf("wild", issuer=root, dns=["*.lab.test"])
    leaf("idna", issuer=root, dns=["xn--bcher-kva.lab.test"])


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("init")
    s.add_argument("dir")
    s = sub.add_parser("leaf")
    s.add_argument("dir")
    s.add_argument("name")
    s.add_argument("--seconds", type=int, required=True)
    s = sub.add_parser("crl")
    s.add_argument("dir")
    s.add_argument("issuer")
    s.add_argument("out")
    s.add_argument("--next", type=int, default=30 * 86400)
    s.add_argument("--revoke", action="append", default=[])
    s = sub.add_parser("forge-crl")
    s.add_argument("claim")
    s.add_argument("key")
    s.add_argument("out")
    a = p.parse_args()
    if a.cmd == "init":
        init(a.dir)
    elif a.cmd == "leaf":
        inter, inter_key = load(a.dir, "inter")
        k = new_key()
        c = make("lab " + a.name, k, (inter, inter_key), dns=["localhost"],
                 ips=["127.0.0.1"], seconds=a.seconds)
        save(a.dir, a.name, c, k)
        write(os.path.join(a.dir, a.name + "-full.pem"), pem(c) + pem(inter))
    elif a.cmd == "crl":
        iss, key = load(a.dir, a.issuer)
        revoked = [load(a.dir, n)[0] for n in a.revoke]
        tmp = a.out + ".tmp"
        write(tmp, crl(iss, key, revoked, a.next))
        os.rename(tmp, a.out)  # as a careful cron job would
    else:
        with open(a.claim, "rb") as f:
            claim = x509.load_pem_x509_certificate(f.read())
        with open(a.key, "rb") as f:
            key = serialization.load_pem_private_key(f.read(), None)
        write(a.out, crl(claim, key, claim=claim))


if __name__ == "__main__":
    sys.exit(main())
