import pytest

from sen.testkit.loopback import Mosquitto, PostgresCluster


@pytest.fixture(scope="session")
def pg_cluster():
    """One throw-away PostgreSQL cluster for the ingest tests; each test makes its own database."""
    pg = PostgresCluster(fsync=False).start()
    yield pg
    pg.cleanup()


@pytest.fixture
def pg_dsn(pg_cluster, request):
    import psycopg

    name = "t_" + "".join(c if c.isalnum() else "_" for c in request.node.name.lower())[:50]
    with psycopg.connect(pg_cluster.dsn, autocommit=True) as con:
        con.execute(f"DROP DATABASE IF EXISTS {name}")
        con.execute(f"CREATE DATABASE {name}")
    return f"host=127.0.0.1 port={pg_cluster.port} user=sen dbname={name}"


@pytest.fixture
def broker(tmp_path):
    m = Mosquitto(tmp_path / "mosquitto").start()
    yield m
    m.stop()
