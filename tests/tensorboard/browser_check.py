"""Opens a TensorBoard page in headless Chromium (Debian's chromium and chromium-driver, driven
by selenium) and waits until every given tag is on the page, then saves a screenshot
(tests/tensorboard_reader.rs runs it against a TensorBoard server on 127.0.0.1).

Usage: browser_check.py URL SCREENSHOT.png TAG[,TAG...]

TensorBoard fetches its data after the page loads and draws only the cards in view, so the
window is tall while waiting (every card of the filtered groups in view) and the page is read
again every half second, for at most 60 s of real time.
"""
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

url, screenshot, tags = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
options = Options()
options.binary_location = "/usr/bin/chromium"
for arg in ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,4000"]:
    options.add_argument(arg)
# The system's chromedriver, so that selenium never tries to download one.
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
try:
    driver.get(url)
    deadline = time.time() + 60
    while True:
        page = driver.page_source
        missing = [tag for tag in tags if tag not in page]
        if not missing:
            break
        if time.time() > deadline:
            print(f"after 60 s the page does not show {missing} ({len(page)} bytes of DOM)")
            sys.exit(1)
        time.sleep(0.5)
    # The settings pane takes a third of the width; the figures show the cards.
    for button in driver.find_elements(By.CSS_SELECTOR, "button[aria-label='Close side pane']"):
        button.click()
    driver.set_window_size(1400, 1100)
    time.sleep(2)
    driver.save_screenshot(screenshot)
finally:
    driver.quit()
print(f"ok: {len(tags)} tags on the page")
