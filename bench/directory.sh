#!/usr/bin/env bash
# Directory sync at city scale: a real OpenLDAP slapd (ldaps, test CA) with
# PEOPLE people (10,000 by default) in one mapped group, and a release
# controller following it. Measures the plan (`portactl directory sync
# --dry-run`: paged reads + planning), the first sync (every user created
# in one transaction), a sync with nothing to change, and one that
# suspends 1% — beside the same run's reference: `ldapsearch` paging
# through the same people (the directory's own floor). Everything on
# 127.0.0.1. Needs root (slapd's files) and Debian's slapd and ldap-utils.
#
# Usage: bench/directory.sh   (PEOPLE=10000 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
umask 077
PEOPLE=${PEOPLE:-10000}
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
BASE="dc=city,dc=test"
LDAPS=36361; LDAP=38981; API=7451

cargo build --release --locked --quiet --bin porta-controller --bin portactl
BIN=$PWD/target/release

# A CA and slapd's certificate for 127.0.0.1.
cd "$WORK"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key \
    -out ca.pem -days 1 -subj "/CN=bench CA" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout server.key \
    -out server.csr -subj "/CN=127.0.0.1" 2>/dev/null
echo "subjectAltName=IP:127.0.0.1" >server.ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem \
    -days 1 -extfile server.ext 2>/dev/null
mkdir db
cat >slapd.conf <<EOF
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile $WORK/slapd.pid
TLSCertificateFile $WORK/server.pem
TLSCertificateKeyFile $WORK/server.key
database mdb
maxsize 1073741824
suffix "$BASE"
rootdn "cn=admin,$BASE"
rootpw admin-secret
directory $WORK/db
# Server-side limits as a real directory has them: paging is required.
limits * size.soft=1000 size.hard=1000 size.pr=500 size.prtotal=unlimited
EOF
python3 - "$PEOPLE" "$BASE" >town.ldif <<'PY'
import sys
people, base = int(sys.argv[1]), sys.argv[2]
print(f"dn: {base}\nobjectClass: dcObject\nobjectClass: organization\no: City\ndc: city\n")
for ou in ("people", "groups", "services"):
    print(f"dn: ou={ou},{base}\nobjectClass: organizationalUnit\nou: {ou}\n")
print(f"dn: cn=porta,ou=services,{base}\nobjectClass: person\nobjectClass: simpleSecurityObject\n"
      f"cn: porta\nsn: porta\nuserPassword: bind-secret\n")
for i in range(people):
    print(f"dn: uid=u{i:05d},ou=people,{base}\nobjectClass: inetOrgPerson\nuid: u{i:05d}\n"
          f"cn: Person {i}\nsn: {i}\ndisplayName: Person {i}\nmail: u{i:05d}@city.test\n"
          f"preferredLanguage: ca\n")
print(f"dn: cn=staff,ou=groups,{base}\nobjectClass: groupOfNames\ncn: staff")
for i in range(people):
    print(f"member: uid=u{i:05d},ou=people,{base}")
print()
PY
slapadd -q -f slapd.conf -l town.ldif
/usr/sbin/slapd -d 0 -f slapd.conf -h "ldaps://127.0.0.1:$LDAPS/ ldap://127.0.0.1:$LDAP/" 2>slapd.log &
PIDS+=($!)
for _ in $(seq 50); do ldapwhoami -x -H "ldap://127.0.0.1:$LDAP" -D "cn=porta,ou=services,$BASE" -w bind-secret >/dev/null 2>&1 && break; sleep 0.2; done

printf 'bind-secret\n' >bind-password
cat >controller.toml <<EOF
[directory]
url = "ldaps://127.0.0.1:$LDAPS"
ca_file = "$WORK/ca.pem"
bind_dn = "cn=porta,ou=services,$BASE"
password_file = "$WORK/bind-password"
base_dn = "$BASE"
preset = "openldap"
interval = "24h"
max_disable_fraction = 0.05
[directory.groups]
"cn=staff,ou=groups,$BASE" = "staff"
EOF
"$BIN/porta-controller" init --data "$WORK/data" --api-endpoint 127.0.0.1:$API \
    --endpoint 127.0.0.1:51898 --no-ipv6 --json >init.json
"$BIN/porta-controller" serve --config controller.toml --data "$WORK/data" \
    --listen 127.0.0.1:$API --no-gateway >serve.log 2>&1 &
SERVE=$!
PIDS+=("$SERVE")
sleep 1
P=(--config "$WORK/p.toml")
"$BIN/portactl" "${P[@]}" login \
    "$(python3 -c "import json; print(json.load(open('init.json'))['admin_invitation'])")" >/dev/null
"$BIN/portactl" "${P[@]}" groups add staff >/dev/null

# measure LABEL COMMAND...: wall seconds.
measure() {
    local label=$1; shift
    local started ended
    started=$(date +%s.%N)
    "$@" >/dev/null
    ended=$(date +%s.%N)
    python3 -c "print('| $label | %.2f |' % ($ended - $started))"
}

echo
echo "Directory sync, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, $PEOPLE people in one mapped group"
echo
echo "| step | seconds |"
echo "|---|---:|"
export LDAPTLS_CACERT=$WORK/ca.pem
measure "reference: ldapsearch paging through the people (500 a page)" \
    ldapsearch -x -H "ldaps://127.0.0.1:$LDAPS" -D "cn=porta,ou=services,$BASE" -w bind-secret \
    -b "$BASE" -E pr=500/noprompt "(objectClass=inetOrgPerson)" uid displayName mail preferredLanguage
measure "plan (--dry-run): read + plan, $PEOPLE to create" "$BIN/portactl" "${P[@]}" directory sync --dry-run
measure "first sync: $PEOPLE users created (one transaction)" "$BIN/portactl" "${P[@]}" directory sync
measure "sync with nothing to change" "$BIN/portactl" "${P[@]}" directory sync
# 1% leave the group.
python3 - "$PEOPLE" "$BASE" >leave.ldif <<'PY'
import sys
people, base = int(sys.argv[1]), sys.argv[2]
print(f"dn: cn=staff,ou=groups,{base}\nchangetype: modify\ndelete: member")
for i in range(0, people, 100):
    print(f"member: uid=u{i:05d},ou=people,{base}")
PY
ldapmodify -x -H "ldap://127.0.0.1:$LDAP" -D "cn=admin,$BASE" -w admin-secret -f leave.ldif >/dev/null
measure "sync suspending one in a hundred ($((PEOPLE / 100)) users)" "$BIN/portactl" "${P[@]}" directory sync
echo
"$BIN/portactl" "${P[@]}" --json directory status | python3 -c "
import json, sys
s = json.load(sys.stdin)
print('last result:', s['last_result'], '| changes:', len(s['last_plan']['changes']))"
echo "users in Porta: $("$BIN/portactl" "${P[@]}" --json users list | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')"
echo "controller peak RSS: $(awk '/VmHWM/ {printf "%.0f MiB", $2/1024}' /proc/$SERVE/status)"
