"""Drive the demo app in a real headless Chromium: type a prompt, press Generate, wait for the streamed
continuation, save a screenshot, and print what the page showed as JSON.

    python space/screenshot.py --model runs/demo/model --out runs/demo/space_screenshot.png
    python space/screenshot.py --url http://127.0.0.1:7860/ --out shot.png     # an app already running

With --model it starts space/app.py on 127.0.0.1 (a free port) for the model, and stops it at the end. It needs
Chromium and its driver (Debian: apt-get install chromium chromium-driver fonts-noto-cjk, the fonts
for the Japanese text) and Selenium. Not part of the Space: push_to_hub.py uploads only app.py and
requirements.txt.
"""

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

APP = Path(__file__).with_name("app.py")


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_app(model, port, timeout=180):
    """space/app.py serving `model` on 127.0.0.1:port, once it answers; the process is the caller's to stop."""
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"}
    process = subprocess.Popen([sys.executable, str(APP), "--model", str(model), "--port", str(port)], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"space/app.py exited with {process.returncode}:\n{process.stdout.read()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5):
                return process, url
        except OSError:
            time.sleep(0.5)
    process.kill()
    raise RuntimeError(f"space/app.py did not answer on {url} within {timeout} s.")


def chromium():
    """Debian's Chromium and chromium-driver, headless; None where they are not installed."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not (binary and driver):
        return None
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1100",
                 "--lang=ja"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(driver), options=options)


def generate_in_page(browser, url, prompt, timeout=120):
    """Type the prompt, press Generate, and return the output box's text once it has stopped growing."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    browser.get(url)
    box = WebDriverWait(browser, 60).until(lambda b: b.find_element(By.CSS_SELECTOR, "#prompt textarea"))
    box.clear()
    box.send_keys(prompt)
    browser.find_element(By.CSS_SELECTOR, "button#generate").click()
    output = browser.find_element(By.CSS_SELECTOR, "#output textarea")
    seen, stable_since, deadline = None, time.monotonic(), time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = output.get_property("value")
        if text != seen:
            seen, stable_since = text, time.monotonic()
        elif len(text) > len(prompt) and time.monotonic() - stable_since > 3:
            return text
        time.sleep(0.2)
    return seen


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="A model folder or Hub id, served by space/app.py for the occasion.")
    source.add_argument("--url", help="The address of an app already running.")
    parser.add_argument("--prompt", default="近年の機械学習は")
    parser.add_argument("--out", required=True, type=Path, help="Where the PNG screenshot goes.")
    args = parser.parse_args(argv)
    browser = chromium()
    if browser is None:
        parser.error("no Chromium: install chromium and chromium-driver (Debian), then rerun.")
    app, url = start_app(args.model, free_port()) if args.model else (None, args.url)
    try:
        output = generate_in_page(browser, url, args.prompt)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(args.out))
    finally:
        browser.quit()
        if app:
            app.terminate()
            app.wait(timeout=30)
    print(json.dumps({"prompt": args.prompt, "output": output, "screenshot": str(args.out)}, ensure_ascii=False))


if __name__ == "__main__":
    main()
