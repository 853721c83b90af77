#!/usr/bin/env python3
"""The web console in a real headless Chromium (issue 24), driven by Selenium.

Why: the console is JavaScript talking to the DynamoDB API with SigV4 signatures it computes
itself; only a real browser shows that it signs correctly, that each page works end to end, and
that under --auth it refuses to work without a key and a read-only key cannot delete. The run
saves screenshots of the main pages into docs/console/ (shown in the README).

Needs Debian's chromium and chromium-driver, Python selenium and boto3 (scripts/test.sh installs
them) and a built `target/debug/haven` (or HAVEN_BIN).
"""

import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import boto3
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ready
from selenium.webdriver.support.ui import Select, WebDriverWait

ROOT = Path(__file__).resolve().parents[2]
HAVEN = os.environ.get("HAVEN_BIN", str(ROOT / "target/debug/haven"))
SHOTS = ROOT / "docs/console"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A `haven serve --in-memory` child on a free loopback port, stopped by its PID."""

    def __init__(self, *args):
        self.port = free_port()
        self.process = subprocess.Popen(
            [HAVEN, "serve", "--in-memory", "--listen", f"127.0.0.1:{self.port}", *args],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.process.stdout.readline()
        assert "listening" in line, f"haven did not start: {line!r}"
        self.url = f"http://127.0.0.1:{self.port}"

    def client(self, key_id="x", secret="x"):
        return boto3.client("dynamodb", endpoint_url=self.url, region_name="us-east-1",
                            aws_access_key_id=key_id, aws_secret_access_key=secret)

    def stop(self):
        self.process.kill()
        self.process.wait()


def browser():
    options = webdriver.ChromeOptions()
    for flag in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                 "--window-size=1200,1500"]:
        options.add_argument(flag)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


class Page:
    def __init__(self, driver):
        self.driver = driver
        self.wait = WebDriverWait(driver, 15)

    def find(self, css):
        return self.wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, css)))

    def type(self, element_id, text):
        field = self.find(f"#{element_id}")
        field.clear()
        field.send_keys(text)

    def click(self, element_id):
        self.wait.until(ready.element_to_be_clickable((By.ID, element_id))).click()

    def text_in(self, css, text):
        self.wait.until(ready.text_to_be_present_in_element((By.CSS_SELECTOR, css), text))

    def heading(self, text):
        self.text_in("main h1", text)

    def error(self, element_id, text):
        self.wait.until(ready.visibility_of_element_located((By.ID, element_id)))
        self.text_in(f"#{element_id}", text)

    def shot(self, name):
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.driver.save_screenshot(str(SHOTS / f"{name}.png"))


def console_tour(server, page):
    """Create a table with a GSI, add and edit an item, query the index, PartiQL, delete."""
    page.driver.get(f"{server.url}/console")
    page.heading("Tables")
    page.text_in("main", "No tables yet.")
    page.driver.get(f"{server.url}/console#/create")
    page.heading("Create table")
    for field, text in [("table-name", "Music"), ("table-hash", "Artist"), ("table-range", "Song"),
                        ("gsi-name", "ByGenre"), ("gsi-hash", "Genre")]:
        page.type(field, text)
    page.shot("create-table")
    page.click("create-table")
    page.heading("Table Music")
    page.text_in("#indexes", "ByGenre")
    assert server.client().describe_table(TableName="Music")["Table"]["GlobalSecondaryIndexes"]

    # Inline validation: the browser's JSON check, then the server's.
    page.type("item-json", "{not json")
    page.click("save-item")
    page.error("item-error", "Invalid JSON")
    page.type("item-json", json.dumps({"Artist": "Acme"}))
    page.click("save-item")
    page.error("item-error", "ValidationException")

    page.type("item-json", json.dumps({"Artist": "Acme", "Song": "Hello", "Genre": "Rock"}))
    page.click("save-item")
    page.text_in("#browse", "Hello")
    page.find("#browse button.edit").click()
    edited = json.loads(page.find("#item-json").get_attribute("value"))
    assert edited == {"Artist": "Acme", "Song": "Hello", "Genre": "Rock"}, edited
    edited.update(Genre="Jazz", Year=2024)
    page.type("item-json", json.dumps(edited))
    page.click("save-item")
    page.text_in("#browse", "Jazz")
    item = server.client().get_item(TableName="Music",
                                    Key={"Artist": {"S": "Acme"}, "Song": {"S": "Hello"}})["Item"]
    assert item["Genre"] == {"S": "Jazz"} and item["Year"] == {"N": "2024"}, item

    Select(page.find("#q-index")).select_by_value("ByGenre")
    page.type("q-hash", "Jazz")
    page.click("run-query")
    page.text_in("#query-results", "1 item(s)")
    page.text_in("#query-results", "Hello")
    page.text_in("#query-cli", "aws dynamodb query")
    page.text_in("#query-cli", "--index-name 'ByGenre'")
    page.text_in("#table-metrics", "write units")
    page.driver.execute_script("window.scrollTo(0, 0)")
    page.shot("table")

    page.driver.get(f"{server.url}/console#/partiql")
    page.heading("PartiQL")
    page.type("statement", "SELECT * FROM \"Music\" WHERE Artist = 'Acme'")
    page.click("run-statement")
    page.text_in("#partiql-results", "1 item(s)")
    page.shot("partiql")

    page.driver.get(f"{server.url}/console#/status")
    page.heading("Status")
    page.text_in("#node", "serving")
    page.text_in("#errors", "ValidationException")
    page.text_in("#operations", "PutItem")
    page.shot("status")

    page.driver.get(f"{server.url}/console#/")
    page.text_in("#tables", "Music")
    page.shot("tables")
    page.driver.get(f"{server.url}/console#/table/Music")
    page.heading("Table Music")
    page.click("delete-table")
    page.driver.switch_to.alert.accept()
    page.heading("Tables")
    page.text_in("main", "No tables yet.")
    assert server.client().list_tables()["TableNames"] == []


def haven_keys(credentials, *args):
    return subprocess.run([HAVEN, "keys", *args, "--credentials", credentials],
                          check=True, capture_output=True, text=True).stdout


def create_key(credentials, name):
    out = haven_keys(credentials, "create", "--name", name)
    fields = dict(line.split(" = ", 1) for line in out.splitlines() if " = " in line)
    return fields["aws_access_key_id"], fields["aws_secret_access_key"]


def sign_in(page, key_id, secret):
    page.type("key-id", key_id)
    page.type("key-secret", secret)
    page.click("sign-in")


def console_under_auth(page, directory):
    """No key: the sign-in form; a bad key refused; a read-only key reads but cannot delete."""
    credentials = str(Path(directory) / "credentials")
    admin = create_key(credentials, "admin")
    reader = create_key(credentials, "reader")
    policy = Path(directory) / "reader.json"
    policy.write_text(json.dumps({"Statement": [{"Effect": "Allow", "Resource": "*", "Action": [
        "dynamodb:ListTables", "dynamodb:Describe*", "dynamodb:Scan", "dynamodb:Query",
        "dynamodb:GetItem"]}]}))
    haven_keys(credentials, "policy", reader[0], str(policy))
    server = Server("--auth", "--credentials", credentials)
    try:
        server.client(*admin).create_table(
            TableName="Guarded", BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])
        page.driver.get(f"{server.url}/console")
        page.heading("Sign in")
        page.shot("sign-in")
        sign_in(page, reader[0], "not-the-secret")
        page.error("login-error", "InvalidSignatureException")
        page.find("#login")
        sign_in(page, *reader)
        page.heading("Tables")
        page.text_in("#tables", "Guarded")
        assert reader[1] not in page.driver.current_url
        page.driver.get(f"{server.url}/console#/table/Guarded")
        page.heading("Table Guarded")
        page.click("delete-table")
        page.driver.switch_to.alert.accept()
        page.error("table-error", "AccessDeniedException")
        assert server.client(*admin).list_tables()["TableNames"] == ["Guarded"]
        # A reload forgets the key: it was only in the page's memory.
        page.driver.refresh()
        page.heading("Sign in")
    finally:
        server.stop()


def main():
    driver = browser()
    try:
        page = Page(driver)
        server = Server()
        try:
            console_tour(server, page)
        finally:
            server.stop()
        with tempfile.TemporaryDirectory() as directory:
            console_under_auth(page, directory)
    finally:
        driver.quit()
    print("console_browser: ok")


if __name__ == "__main__":
    sys.exit(main())
