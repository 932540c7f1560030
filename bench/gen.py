"""Generates the benchmark's plaintexts: the team's 11 files plus N generated dotenv files,
and a secret-files.txt / secrets.toml describing them. Deterministic for a given seed."""
import os
import random
import sys

out, count, big_mib = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rnd = random.Random(42)


def value(n):
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    return "".join(rnd.choice(alphabet) for _ in range(n))


def dotenv(keys):
    return "".join(f"{k}={value(rnd.randint(8, 40))}\n" for k in keys)


team = {
    "shared/.env": ("dotenv", dotenv(["POSTGRES_PASSWORD", "REDIS_PASSWORD", "SMTP_PASSWORD"])),
    "monitoring/.env": ("dotenv", dotenv(["GRAFANA_ADMIN_PASSWORD", "PROMETHEUS_TOKEN"])),
    "umami/.env": ("dotenv", dotenv(["DATABASE_URL", "APP_SECRET"])),
    "nginx/.htpasswd": ("binary", f"admin:$apr1${value(8)}${value(22)}\n"),
    "shared/init-scripts/01-create-databases.sql": (
        "binary",
        "".join(f"CREATE DATABASE db{i};\nCREATE USER u{i} WITH PASSWORD '{value(20)}';\n" for i in range(5)),
    ),
}
for app in ("aletheia", "helios"):
    for env in ("dev", "staging", "prod"):
        team[f"envs/{app}/.env.{env}"] = (
            "dotenv",
            dotenv(["DB_PASSWORD", "SMTP_PASSWORD", "API_KEY", "JWT_SECRET", "S3_SECRET_KEY"]),
        )
files = dict(team)
for i in range(count):
    files[f"gen/{i:04d}/.env"] = ("dotenv", dotenv([f"KEY_{k}" for k in range(10)]))
if big_mib:
    # A fixture of its own: one large binary secret.
    files = {"big/blob.bin": ("binary", None)}

lines, toml = [], ["version = 1", "", "[server]", 'root = "../server"', 'identity = "../../key.txt"', ""]
for server, (kind, text) in files.items():
    path = os.path.join(out, "plain", server)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        if text is None:
            f.write(os.urandom(big_mib << 20))
        else:
            f.write(text.encode())
    repo = server + ".enc"
    lines.append(f"{repo}:{server}:{kind}")
    toml += ["[[file]]", f'repo = "{repo}"', f'server = "{server}"', f'format = "{kind}"', ""]
os.makedirs(os.path.join(out, "repo"), exist_ok=True)
with open(os.path.join(out, "repo", "secret-files.txt"), "w") as f:
    f.write("\n".join(lines) + "\n")
with open(os.path.join(out, "repo", "secrets.toml"), "w") as f:
    f.write("\n".join(toml))
