from duban.cli import run

run()
