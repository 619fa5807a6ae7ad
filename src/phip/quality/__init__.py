"""Data quality control (数据质控): rules kept as data, analysis runs over stored records,
findings per record and scores per institution × data set × day."""
