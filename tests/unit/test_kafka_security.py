"""Kafka security: one set of client arguments for every client, Faust's credentials, and the refusal lines."""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path

import faust
import pytest
from aiokafka.errors import KafkaConnectionError, SaslAuthenticationFailed, UnsupportedSaslMechanismError

from streams import kafka_security
from streams.kafka_security import (
    KafkaAccessDenied,
    KafkaSecurity,
    SecurityProtocol,
    check_kafka_access,
    faust_credentials,
    kafka_options,
)
from streams.settings import Settings

PASSWORD = "kafka-password-SECRET"


@pytest.fixture(scope="module")
def ca_file(tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = tmp_path_factory.mktemp("ca")
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=test-ca"),
            *("-keyout", str(folder / "ca.key"), "-out", str(folder / "ca.crt")),
        ],
        check=True,
        capture_output=True,
    )
    return str(folder / "ca.crt")


def sasl_ssl(ca_file: str, **env: str) -> Settings:
    return Settings.from_env(
        {
            "KAFKA_BROKER_URL": "kafka://b1:9094,kafka://b2:9094",
            "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "KAFKA_SASL_USERNAME": "worker",
            "KAFKA_SASL_PASSWORD": PASSWORD,
            "KAFKA_SSL_CA_FILE": ca_file,
            **env,
        }
    )


def test_plaintext_is_the_default_and_needs_no_credentials():
    settings = Settings()
    assert kafka_options(settings) == {
        "bootstrap_servers": ["127.0.0.1:9092"],
        "security_protocol": "PLAINTEXT",
        "ssl_context": None,
    }
    assert faust_credentials(settings) is None


def test_sasl_ssl_gives_every_client_the_same_verified_tls_and_login(ca_file):
    options = kafka_options(sasl_ssl(ca_file))
    context = options.pop("ssl_context")
    assert options == {
        "bootstrap_servers": ["b1:9094", "b2:9094"],
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "worker",
        "sasl_plain_password": PASSWORD,
    }
    assert isinstance(context, ssl.SSLContext)
    assert context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED
    assert kafka_options(sasl_ssl(ca_file))["ssl_context"] is context  # made once, shared by the clients


def test_faust_gets_the_same_credentials(ca_file):
    credentials = faust_credentials(sasl_ssl(ca_file, KAFKA_SASL_MECHANISM="SCRAM-SHA-256"))
    assert isinstance(credentials, faust.SASLCredentials)
    assert (credentials.protocol.value, credentials.mechanism.value) == ("SASL_SSL", "SCRAM-SHA-256")
    assert (credentials.username, credentials.password) == ("worker", PASSWORD)
    assert PASSWORD not in repr(credentials)
    tls_only = faust_credentials(Settings.from_env({"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CA_FILE": ca_file}))
    assert isinstance(tls_only, faust.SSLCredentials) and tls_only.protocol.value == "SSL"
    plain = faust_credentials(
        Settings.from_env(
            {"KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": "p"}
        )
    )
    assert isinstance(plain, faust.SASLCredentials) and plain.protocol.value == "SASL_PLAINTEXT"


def test_the_description_and_repr_never_hold_the_password(ca_file):
    security = KafkaSecurity.of(sasl_ssl(ca_file))
    assert security.describe() == f"SASL_SSL, SCRAM-SHA-512 as 'worker', CA {ca_file}"
    assert PASSWORD not in repr(security) and PASSWORD not in security.describe()
    assert SecurityProtocol.SASL_SSL.tls and SecurityProtocol.SASL_SSL.sasl and not SecurityProtocol.SSL.sasl


def refusing(exc: BaseException):
    async def create_conn(host: str, port: int, **options: object) -> None:
        raise exc

    return create_conn


@pytest.mark.parametrize(
    ("exc", "line"),
    [
        (SaslAuthenticationFailed(), "kafka: b1:9094 refused the SASL SCRAM-SHA-512 login of 'worker' (wrong user"),
        (UnsupportedSaslMechanismError(), "kafka: b1:9094 does not accept SASL mechanism SCRAM-SHA-512"),
        (ssl.SSLCertVerificationError(1, "x"), "kafka: the certificate of b1:9094 is not trusted"),
        (ssl.SSLError(1, "WRONG_VERSION_NUMBER"), "kafka: the TLS handshake with b1:9094 failed"),
    ],
)
async def test_a_refusal_is_one_line_that_says_which(monkeypatch, ca_file, exc, line):
    monkeypatch.setattr(kafka_security, "create_conn", refusing(exc))
    with pytest.raises(KafkaAccessDenied) as caught:
        await check_kafka_access(sasl_ssl(ca_file))
    text = str(caught.value)
    assert text.startswith(line) and "\n" not in text and PASSWORD not in text
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


async def test_unreachable_servers_are_tried_in_turn_and_then_named(monkeypatch, ca_file):
    tried: list[str] = []

    async def create_conn(host: str, port: int, **options: object) -> None:
        tried.append(host)
        raise ConnectionRefusedError(111, "refused")

    monkeypatch.setattr(kafka_security, "create_conn", create_conn)
    with pytest.raises(KafkaAccessDenied, match=r"no bootstrap server answered over SASL_SSL \(b1:9094: "):
        await check_kafka_access(sasl_ssl(ca_file))
    assert tried == ["b1", "b2"]


async def test_the_first_server_that_lets_us_in_ends_the_check(monkeypatch, ca_file):
    class Connection:
        closed = False

        def close(self) -> None:
            self.closed = True

    connection = Connection()

    async def create_conn(host: str, port: int, **options: object) -> Connection:
        if host == "b1":
            raise KafkaConnectionError("down")
        assert options["sasl_plain_password"] == PASSWORD and options["security_protocol"] == "SASL_SSL"
        return connection

    monkeypatch.setattr(kafka_security, "create_conn", create_conn)
    await check_kafka_access(sasl_ssl(ca_file))
    assert connection.closed


def test_a_missing_ca_file_is_a_configuration_error_not_a_crash(tmp_path: Path):
    with pytest.raises(ValueError, match="KAFKA_SSL_CA_FILE must be the path of a readable file"):
        Settings.from_env({"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CA_FILE": str(tmp_path / "none.pem")})


async def test_a_client_certificate_refused_after_the_handshake_is_named(monkeypatch, ca_file):
    monkeypatch.setattr(kafka_security, "create_conn", refusing(KafkaConnectionError("Connection closed")))
    mutual = Settings.from_env(
        {
            "KAFKA_SECURITY_PROTOCOL": "SSL",
            "KAFKA_SSL_CA_FILE": ca_file,
            "KAFKA_SSL_CERT_FILE": ca_file,  # any certificate with its key will do here
            "KAFKA_SSL_KEY_FILE": ca_file.replace("ca.crt", "ca.key"),
        }
    )
    with pytest.raises(KafkaAccessDenied, match="does not accept this worker's client certificate"):
        await check_kafka_access(mutual)


def test_files_that_are_no_certificate_or_key_are_a_configuration_error(ca_file):
    with pytest.raises(ValueError, match="KAFKA_SSL_CERT_FILE and KAFKA_SSL_KEY_FILE are not a PEM certificate"):
        Settings.from_env(
            {
                "KAFKA_SECURITY_PROTOCOL": "SSL",
                "KAFKA_SSL_CERT_FILE": ca_file,
                "KAFKA_SSL_KEY_FILE": ca_file,  # a certificate, not its key
            }
        )
    with pytest.raises(ValueError, match="KAFKA_SSL_CA_FILE is not a PEM certificate"):
        Settings.from_env({"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CA_FILE": str(Path(__file__))})
